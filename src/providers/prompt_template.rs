//! Text prompts for upstreams that take one string instead of chat messages: LiteLLM's documented
//! custom prompt template (`initial_prompt_value`, `roles`, `final_prompt_value`, `bos_token`,
//! `eos_token` in `litellm_params`) and Ollama's default `### User:` format (`ollama_pt`).
//!
//! Used by `ollama/` (`/api/generate`) and by `huggingface/` when a deployment sets a template
//! (TGI `/generate`).

use crate::config::pyrepr::python_json;
use llm_proxy_actors::ErrorClass;
use serde_json::{Map, Value};

use super::ProviderError;

/// The text a role's messages are wrapped in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleTemplate {
    pub pre_message: String,
    pub post_message: String,
}

/// A deployment's custom prompt template. Missing values are empty strings (LiteLLM raises a
/// `KeyError` for a missing `initial_prompt_value` / `final_prompt_value` on `ollama/`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PromptTemplate {
    pub initial_prompt_value: String,
    pub final_prompt_value: String,
    pub bos_token: String,
    pub eos_token: String,
    /// In the order the config lists them.
    pub roles: Vec<(String, RoleTemplate)>,
}

const TEMPLATE_KEYS: &[&str] = &[
    "initial_prompt_value",
    "roles",
    "final_prompt_value",
    "bos_token",
    "eos_token",
];

impl PromptTemplate {
    /// The template a deployment's `litellm_params` describe, or `None` when none of the template
    /// keys is set to a non-empty value (LiteLLM builds a template only from truthy keys).
    /// `model` names the deployment in configuration errors.
    pub fn from_params(
        params: &Map<String, Value>,
        model: &str,
    ) -> Result<Option<PromptTemplate>, ProviderError> {
        let truthy = TEMPLATE_KEYS.iter().any(|k| match params.get(*k) {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Object(m)) => !m.is_empty(),
            Some(_) => true,
        });
        if !truthy {
            return Ok(None);
        }
        let text = |key: &str| -> Result<String, ProviderError> {
            match params.get(key) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(ProviderError::invalid_config(format!(
                    "the custom prompt template for model={model} has a `{key}` that is not a string"
                ))),
            }
        };
        let mut roles = Vec::new();
        match params.get("roles") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (role, entry) in map {
                    let entry = match entry {
                        Value::Null => continue,
                        Value::Object(e) => e,
                        _ => {
                            return Err(ProviderError::invalid_config(format!(
                                "the custom prompt template for model={model} has a `roles.{role}` that is not a mapping"
                            )))
                        }
                    };
                    let part = |key: &str| -> Result<String, ProviderError> {
                        match entry.get(key) {
                            None | Some(Value::Null) => Ok(String::new()),
                            Some(Value::String(s)) => Ok(s.clone()),
                            Some(_) => Err(ProviderError::invalid_config(format!(
                                "the custom prompt template for model={model} has a `roles.{role}.{key}` that is not a string"
                            ))),
                        }
                    };
                    roles.push((
                        role.clone(),
                        RoleTemplate {
                            pre_message: part("pre_message")?,
                            post_message: part("post_message")?,
                        },
                    ));
                }
            }
            Some(_) => {
                return Err(ProviderError::invalid_config(format!(
                    "the custom prompt template for model={model} has `roles` that is not a mapping"
                )))
            }
        }
        Ok(Some(PromptTemplate {
            initial_prompt_value: text("initial_prompt_value")?,
            final_prompt_value: text("final_prompt_value")?,
            bos_token: text("bos_token")?,
            eos_token: text("eos_token")?,
            roles,
        }))
    }

    fn role(&self, role: &str) -> Option<&RoleTemplate> {
        self.roles.iter().find(|(r, _)| r == role).map(|(_, t)| t)
    }

    /// LiteLLM's documented assembly (`factory.py::custom_prompt`): `bos + initial`, then for each
    /// message `pre + content + post` (list content is its text parts joined), an assistant turn
    /// closed with `eos`, and `bos` added again before the next `system` or `human` message after
    /// such a close (not before `user`: LiteLLM checks `human`), then `final`.
    pub fn render(&self, messages: &[Value]) -> String {
        let mut prompt = String::with_capacity(256);
        prompt.push_str(&self.bos_token);
        prompt.push_str(&self.initial_prompt_value);
        let mut bos_open = true;
        for message in messages {
            let role = message.get("role").and_then(Value::as_str).unwrap_or("");
            if (role == "system" || role == "human") && !bos_open {
                prompt.push_str(&self.bos_token);
                bos_open = true;
            }
            let template = self.role(role);
            if let Some(t) = template {
                prompt.push_str(&t.pre_message);
            }
            push_text(&mut prompt, message.get("content"));
            if let Some(t) = template {
                prompt.push_str(&t.post_message);
            }
            if role == "assistant" {
                prompt.push_str(&self.eos_token);
                bos_open = false;
            }
        }
        prompt.push_str(&self.final_prompt_value);
        prompt
    }
}

/// Append a message's text: a string as is, a list as the concatenation of its `text` parts.
fn push_text(out: &mut String, content: Option<&Value>) {
    match content {
        Some(Value::String(s)) => out.push_str(s),
        Some(Value::Array(parts)) => {
            for part in parts {
                if let Some(text) = part.get("text").and_then(Value::as_str) {
                    out.push_str(text);
                }
            }
        }
        _ => {}
    }
}

/// A message's content as one string (LiteLLM's `convert_content_list_to_str`).
pub fn content_text(content: Option<&Value>) -> String {
    let mut s = String::new();
    push_text(&mut s, content);
    s
}

/// Ollama's default text prompt and the images the user turns carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OllamaPrompt {
    pub prompt: String,
    /// Base64 image data, in message order.
    pub images: Vec<String>,
}

/// LiteLLM's `ollama_pt`: consecutive user/tool/function messages become one `### User:` block
/// (their texts joined by newlines), consecutive system messages one `### System:` block,
/// consecutive assistant messages one `### Assistant:` block (tool calls written as one JSON object
/// per line, `{"name": …, "arguments": …}` as Python's `json.dumps` prints it). `developer` counts
/// as `system` (LiteLLM rejects it).
pub fn ollama_pt(messages: &[Value]) -> Result<OllamaPrompt, ProviderError> {
    let role_of = |m: &Value| {
        m.get("role")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut out = OllamaPrompt::default();
    let mut i = 0;
    while i < messages.len() {
        let start = i;
        let mut user_blocks: Vec<String> = Vec::new();
        while i < messages.len()
            && matches!(role_of(&messages[i]).as_str(), "user" | "tool" | "function")
        {
            let texts = user_parts(&messages[i], &mut out.images)?;
            if !texts.is_empty() {
                user_blocks.push(texts.join("\n"));
            }
            i += 1;
        }
        if !user_blocks.is_empty() {
            out.prompt.push_str("### User:\n");
            out.prompt.push_str(&user_blocks.join("\n"));
            out.prompt.push_str("\n\n");
        }
        let mut system = String::new();
        while i < messages.len() && matches!(role_of(&messages[i]).as_str(), "system" | "developer")
        {
            push_text(&mut system, messages[i].get("content"));
            i += 1;
        }
        if !system.is_empty() {
            out.prompt.push_str("### System:\n");
            out.prompt.push_str(&system);
            out.prompt.push_str("\n\n");
        }
        let mut assistant = String::new();
        while i < messages.len() && role_of(&messages[i]) == "assistant" {
            push_text(&mut assistant, messages[i].get("content"));
            if let Some(Value::Array(calls)) = messages[i].get("tool_calls") {
                if !calls.is_empty() {
                    if !assistant.is_empty() {
                        assistant.push('\n');
                    }
                    let lines: Vec<String> = calls.iter().map(tool_call_line).collect();
                    assistant.push_str(&lines.join("\n"));
                }
            }
            i += 1;
        }
        if !assistant.is_empty() {
            out.prompt.push_str("### Assistant:\n");
            out.prompt.push_str(&assistant);
            out.prompt.push_str("\n\n");
        }
        if i == start {
            return Err(ProviderError::new(
                ErrorClass::BadRequest,
                400,
                format!(
                    "litellm.BadRequestError: OllamaException - Invalid Message passed in: the message at index {i} has role {:?}; expected system, developer, user, assistant, tool or function",
                    role_of(&messages[i])
                ),
            ));
        }
    }
    Ok(out)
}

/// The texts of one user-side message; its images are appended to `images`.
fn user_parts(message: &Value, images: &mut Vec<String>) -> Result<Vec<String>, ProviderError> {
    match message.get("content") {
        Some(Value::String(s)) if !s.is_empty() => Ok(vec![s.clone()]),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::new();
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = part
                            .get("text")
                            .and_then(Value::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            texts.push(t.to_string());
                        }
                    }
                    Some("image_url") => {
                        if let Some(url) = image_url(part) {
                            images.push(ollama_image(url)?);
                        }
                    }
                    _ => {}
                }
            }
            Ok(texts)
        }
        _ => Ok(Vec::new()),
    }
}

/// The URL of an OpenAI `image_url` part (a string or `{"url": …}`).
pub fn image_url(part: &Value) -> Option<&str> {
    match part.get("image_url") {
        Some(Value::String(s)) => Some(s),
        Some(Value::Object(o)) => o.get("url").and_then(Value::as_str),
        _ => None,
    }
}

/// Ollama takes images as bare base64. A `data:` URL gives its payload, base64 passes as is; a
/// remote URL is refused (LiteLLM downloads it; this proxy does not fetch client-named URLs).
pub fn ollama_image(url: &str) -> Result<String, ProviderError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return Err(ProviderError::new(
            ErrorClass::BadRequest,
            400,
            "litellm.BadRequestError: OllamaException - Ollama takes images as base64; send the image as a data: URL (data:image/png;base64,...) instead of a remote URL",
        ));
    }
    if url.starts_with("data:") {
        if let Some((_, data)) = url.split_once(";base64,") {
            return Ok(data.to_string());
        }
        if let Some((_, data)) = url.rsplit_once(',') {
            return Ok(data.to_string());
        }
    }
    Ok(url.to_string())
}

/// `{"name": …, "arguments": …}` for one OpenAI tool call, as `json.dumps` writes it.
fn tool_call_line(call: &Value) -> String {
    let function = call.get("function");
    let name = function
        .and_then(|f| f.get("name"))
        .cloned()
        .unwrap_or(Value::Null);
    let arguments = match function.and_then(|f| f.get("arguments")) {
        Some(Value::String(s)) => {
            serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
        }
        Some(other) => other.clone(),
        None => Value::Object(Map::new()),
    };
    let mut obj = Map::new();
    obj.insert("name".into(), name);
    obj.insert("arguments".into(), arguments);
    python_json(&Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::providers::testing::obj;

    /// `litellm_params` of tests/fixtures/huggingface/09-custom-prompt-template.yaml (the
    /// LiteLLM docs example), as the config loader hands them over.
    fn fixture_09() -> Map<String, Value> {
        let yaml = include_str!("../../tests/fixtures/huggingface/09-custom-prompt-template.yaml");
        let doc: Value = serde_yaml::from_str(yaml).unwrap();
        obj(doc["model_list"][0]["litellm_params"].clone())
    }

    #[test]
    fn no_template_without_a_truthy_key() {
        let p = obj(
            json!({"model": "ollama/llama3", "initial_prompt_value": "", "roles": {}, "bos_token": null}),
        );
        assert_eq!(
            PromptTemplate::from_params(&p, "ollama/llama3").unwrap(),
            None
        );
    }

    #[test]
    fn the_docs_fixture_builds_its_template() {
        let t = PromptTemplate::from_params(&fixture_09(), "m")
            .unwrap()
            .unwrap();
        assert_eq!(t.initial_prompt_value, "\n");
        assert_eq!(t.final_prompt_value, "\n");
        assert_eq!((t.bos_token.as_str(), t.eos_token.as_str()), (" ", " "));
        let names: Vec<&str> = t.roles.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(names, ["system", "assistant", "user"]);
        assert_eq!(
            t.roles[1].1,
            RoleTemplate {
                pre_message: "<|im_start|>assistant\n".into(),
                post_message: "<|im_end|>".into()
            }
        );
    }

    /// The worked example of LITELLM-REFERENCE §6.6.
    #[test]
    fn worked_example_system_then_user() {
        let t = PromptTemplate::from_params(&fixture_09(), "m")
            .unwrap()
            .unwrap();
        let prompt = t.render(&[
            json!({"role": "system", "content": "S"}),
            json!({"role": "user", "content": "U"}),
        ]);
        assert_eq!(
            prompt,
            " \n<|im_start|>system\nS<|im_end|><|im_start|>user\nU<|im_end|>\n"
        );
    }

    #[test]
    fn eos_closes_assistant_turns_and_bos_returns_only_before_system_or_human() {
        let t = PromptTemplate::from_params(
            &obj(json!({
                "bos_token": "<s>", "eos_token": "</s>",
                "roles": {"user": {"pre_message": "[U]"}, "assistant": {"post_message": "[/A]"}, "human": {"pre_message": "[H]"}}
            })),
            "m",
        )
        .unwrap()
        .unwrap();
        let prompt = t.render(&[
            json!({"role": "user", "content": "a"}),
            json!({"role": "assistant", "content": "b"}),
            json!({"role": "user", "content": [{"type": "text", "text": "c"}, {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "d"}]}),
            json!({"role": "assistant", "content": "e"}),
            json!({"role": "human", "content": "f"}),
            json!({"role": "tool", "content": "g"}),
        ]);
        assert_eq!(prompt, "<s>[U]ab[/A]</s>[U]cde[/A]</s><s>[H]fg");
    }

    #[test]
    fn missing_initial_and_final_values_are_empty() {
        let t = PromptTemplate::from_params(
            &obj(json!({"roles": {"user": {"pre_message": "> ", "post_message": "\n"}}})),
            "m",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            t.render(&[json!({"role": "user", "content": "hi"})]),
            "> hi\n"
        );
    }

    #[test]
    fn wrong_types_are_configuration_errors() {
        let e =
            PromptTemplate::from_params(&obj(json!({"roles": ["user"]})), "ollama/x").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.message
                .contains("model=ollama/x has `roles` that is not a mapping"),
            "{}",
            e.message
        );
        let e =
            PromptTemplate::from_params(&obj(json!({"roles": {"user": {"pre_message": 1}}})), "m")
                .unwrap_err();
        assert!(
            e.message.contains("`roles.user.pre_message`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn ollama_pt_groups_turns() {
        let p = ollama_pt(&[
            json!({"role": "system", "content": "Be brief."}),
            json!({"role": "user", "content": "Hi"}),
            json!({"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}}, {"type": "text", "text": "here"}]}),
            json!({"role": "assistant", "content": "Sure."}),
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{\"where\":\"café\",\"n\":2}"}}]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": "a cat"}),
        ])
        .unwrap();
        assert_eq!(
            p.prompt,
            "### System:\nBe brief.\n\n### User:\nHi\nLook\nhere\n\n### Assistant:\nSure.\n{\"name\": \"look\", \"arguments\": {\"where\": \"caf\\u00e9\", \"n\": 2}}\n\n### User:\na cat\n\n"
        );
        assert_eq!(p.images, ["iVBORw0K"]);
    }

    #[test]
    fn ollama_pt_refuses_unknown_roles_and_remote_images() {
        let e = ollama_pt(&[json!({"role": "critic", "content": "x"})]).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("role \"critic\""), "{}", e.message);
        let e = ollama_pt(&[json!({"role": "user", "content": [{"type": "image_url", "image_url": "https://x/cat.png"}]})]).unwrap_err();
        assert!(e.message.contains("data: URL"), "{}", e.message);
        assert_eq!(
            ollama_pt(&[json!({"role": "developer", "content": "d"})])
                .unwrap()
                .prompt,
            "### System:\nd\n\n"
        );
    }
}

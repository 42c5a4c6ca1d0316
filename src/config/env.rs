//! `os.environ/NAME` references and the `environment_variables:` block.

use super::pyrepr::py_string;
use super::Warnings;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The prefix that makes a string value a reference to an environment variable.
pub(crate) const ENV_PREFIX: &str = "os.environ/";

/// Reads `os.environ/` references. Remembers what `environment_variables:` overwrote, so that
/// deployment ids can be hashed from the values LiteLLM would have seen (it resolves references
/// before applying that block).
#[derive(Default)]
pub(crate) struct EnvResolver {
    /// Variables set by `environment_variables:`, with their value before the config was loaded.
    shadowed: BTreeMap<String, Option<String>>,
}

/// Which rules to resolve by.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    /// llm-proxy's: every string at any depth, with `environment_variables:` applied.
    Ours,
    /// LiteLLM's (for hashing ids only): strings inside lists stay literal, and variables set by
    /// `environment_variables:` read as they were before.
    LiteLlm,
}

impl EnvResolver {
    fn lookup(&self, name: &str, view: View) -> Option<String> {
        if view == View::LiteLlm {
            if let Some(previous) = self.shadowed.get(name) {
                return previous.clone();
            }
        }
        std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
    }

    /// The value of one reference: the variable's text, `true`/`false` (any case, trimmed) as
    /// booleans like LiteLLM's `get_secret`, or `Err(name)` when the variable is unset.
    fn resolve_reference(&self, name: &str, view: View) -> Result<Value, String> {
        match self.lookup(name, view) {
            None => Err(name.to_owned()),
            Some(text) => Ok(match text.trim().to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(text),
            }),
        }
    }

    /// Replaces every `os.environ/NAME` string in `value`; an unset variable becomes null and is
    /// reported with the path of the value (relative to `path`).
    pub(crate) fn resolve(&self, value: &mut Value, path: &str, missing: &mut Vec<Missing>) {
        self.walk(value, path, View::Ours, missing);
    }

    /// Resolves like LiteLLM does, for hashing ids; unset variables are not reported.
    pub(crate) fn resolve_litellm_view(&self, value: &mut Value) {
        self.walk(value, "", View::LiteLlm, &mut Vec::new());
    }

    fn walk(&self, value: &mut Value, path: &str, view: View, missing: &mut Vec<Missing>) {
        match value {
            Value::String(s) => {
                if let Some(name) = s.strip_prefix(ENV_PREFIX) {
                    *value = match self.resolve_reference(name, view) {
                        Ok(v) => v,
                        Err(variable) => {
                            missing.push(Missing {
                                variable,
                                path: path.to_owned(),
                            });
                            Value::Null
                        }
                    };
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    if view == View::LiteLlm && !item.is_object() {
                        continue;
                    }
                    self.walk(item, &format!("{path}[{i}]"), view, missing);
                }
            }
            Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    self.walk(item, &super::yaml::child_path(path, key), view, missing);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// Exports `environment_variables:` into the process environment, resolving `os.environ/`
    /// values first. Values are stringified as Python's `str()` does (`true` → `True`).
    pub(crate) fn export(&mut self, variables: &Map<String, Value>, warnings: &mut Warnings) {
        for (name, value) in variables {
            let path = format!("environment_variables.{name}");
            let mut value = value.clone();
            let mut missing = Vec::new();
            self.resolve(&mut value, &path, &mut missing);
            for m in &missing {
                warnings.push(format!(
                    "{path}: {ENV_PREFIX}{} is not set; {name} is not exported",
                    m.variable
                ));
            }
            if value.is_null() {
                if missing.is_empty() {
                    warnings.push(format!("{path}: no value; {name} is not exported"));
                }
                continue;
            }
            let text = py_string(&value);
            if name.is_empty() || name.contains(['=', '\0']) || text.contains('\0') {
                warnings.push(format!(
                    "{path}: not a valid environment variable name or value; not exported"
                ));
                continue;
            }
            if !self.shadowed.contains_key(name) {
                let previous = std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
                self.shadowed.insert(name.clone(), previous);
            }
            std::env::set_var(name, text);
        }
    }
}

/// An `os.environ/` reference whose variable is unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Missing {
    pub variable: String,
    /// Where the reference was, e.g. `litellm_params.api_key`.
    pub path: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resolves_at_any_depth_and_reports_unset() {
        std::env::set_var("LLMP_ENV_T1_SET", "value-1");
        std::env::set_var("LLMP_ENV_T1_BOOL", " True ");
        let resolver = EnvResolver::default();
        let mut value = json!({
            "a": "os.environ/LLMP_ENV_T1_SET",
            "b": ["os.environ/LLMP_ENV_T1_SET", {"c": "os.environ/LLMP_ENV_T1_UNSET"}],
            "d": "os.environ/LLMP_ENV_T1_BOOL",
            "e": "plain os.environ/LLMP_ENV_T1_SET",
        });
        let mut missing = Vec::new();
        resolver.resolve(&mut value, "x", &mut missing);
        assert_eq!(
            value,
            json!({"a": "value-1", "b": ["value-1", {"c": null}], "d": true,
                   "e": "plain os.environ/LLMP_ENV_T1_SET"})
        );
        assert_eq!(
            missing,
            vec![Missing {
                variable: "LLMP_ENV_T1_UNSET".into(),
                path: "x.b[1].c".into()
            }]
        );
    }

    #[test]
    fn litellm_view_leaves_list_strings_and_sees_the_old_environment() {
        std::env::set_var("LLMP_ENV_T2_OLD", "before");
        let mut resolver = EnvResolver::default();
        let mut warnings = Warnings::default();
        let block =
            json!({"LLMP_ENV_T2_OLD": "after", "LLMP_ENV_T2_NEW": 5, "LLMP_ENV_T2_FLAG": true});
        resolver.export(block.as_object().unwrap(), &mut warnings);
        assert_eq!(std::env::var("LLMP_ENV_T2_OLD").unwrap(), "after");
        assert_eq!(std::env::var("LLMP_ENV_T2_NEW").unwrap(), "5");
        assert_eq!(std::env::var("LLMP_ENV_T2_FLAG").unwrap(), "True");
        let mut value = json!({
            "a": "os.environ/LLMP_ENV_T2_OLD",
            "b": "os.environ/LLMP_ENV_T2_NEW",
            "c": ["os.environ/LLMP_ENV_T2_OLD"],
        });
        resolver.resolve_litellm_view(&mut value);
        assert_eq!(
            value,
            json!({"a": "before", "b": null, "c": ["os.environ/LLMP_ENV_T2_OLD"]})
        );
        assert!(warnings.into_vec().is_empty());
    }

    #[test]
    fn export_skips_unset_and_invalid() {
        let mut resolver = EnvResolver::default();
        let mut warnings = Warnings::default();
        let block = json!({"LLMP_ENV_T3_A": "os.environ/LLMP_ENV_T3_UNSET", "BAD=NAME": "x", "LLMP_ENV_T3_B": null});
        resolver.export(block.as_object().unwrap(), &mut warnings);
        assert!(std::env::var_os("LLMP_ENV_T3_A").is_none());
        assert!(std::env::var_os("LLMP_ENV_T3_B").is_none());
        assert_eq!(warnings.into_vec().len(), 3);
    }
}

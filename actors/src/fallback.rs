//! Which fallback groups to try after a group gives up (LiteLLM's
//! `async_function_with_fallbacks`): context-window and content-policy errors go to their own
//! lists when any such list is configured, everything else (rate limits, 5xx, timeouts, no
//! deployments) to the generic `fallbacks`. Entries are looked up under the name the client sent
//! (an alias stays an alias), then the group it resolved to, then the `"*"` default entry.

use crate::error::ErrorClass;
use crate::settings::RouterSettings;

/// The `"*"` key that holds `default_fallbacks`.
pub const DEFAULT_KEY: &str = "*";

fn lookup<'a>(
    list: &'a [(String, Vec<String>)],
    requested: &str,
    group: &str,
) -> Option<&'a [String]> {
    [requested, group, DEFAULT_KEY].into_iter().find_map(|key| {
        list.iter()
            .find(|(name, _)| name == key)
            .map(|(_, targets)| targets.as_slice())
    })
}

/// The configured fallback groups, in order, for a group that failed with `class` (`None` when it
/// ended with no available deployment).
pub fn fallback_groups(
    settings: &RouterSettings,
    requested: &str,
    group: &str,
    class: Option<ErrorClass>,
) -> Vec<String> {
    let specific = match class {
        Some(ErrorClass::ContextWindowExceeded) => Some(&settings.context_window_fallbacks),
        Some(ErrorClass::ContentPolicy) => Some(&settings.content_policy_fallbacks),
        _ => None,
    };
    let list = match specific {
        // Configured for some group: a missing entry means no fallback, as in LiteLLM.
        Some(list) if !list.is_empty() => list,
        _ => &settings.fallbacks,
    };
    lookup(list, requested, group)
        .map(<[String]>::to_vec)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;

    fn entry(key: &str, targets: &[&str]) -> (String, Vec<String>) {
        (
            key.to_owned(),
            targets.iter().map(|t| (*t).to_owned()).collect(),
        )
    }

    #[test]
    fn fallback_plan_table() {
        let settings = RouterSettings {
            fallbacks: vec![
                entry("gpt-4", &["claude", "mistral"]),
                entry("*", &["cheap"]),
            ],
            context_window_fallbacks: vec![entry("gpt-4", &["gpt-4-32k"])],
            ..RouterSettings::default()
        };
        let plan = |requested, group, class| fallback_groups(&settings, requested, group, class);
        assert_eq!(
            plan("gpt-4", "gpt-4", Some(RateLimit)),
            vec!["claude", "mistral"]
        );
        assert_eq!(plan("gpt-4", "gpt-4", None), vec!["claude", "mistral"]);
        assert_eq!(
            plan("gpt-4", "gpt-4", Some(ContextWindowExceeded)),
            vec!["gpt-4-32k"]
        );
        // Configured context-window fallbacks without an entry for this group: none at all.
        assert!(plan("other", "other", Some(ContextWindowExceeded)).is_empty());
        // No content-policy list at all: generic fallbacks apply.
        assert_eq!(
            plan("gpt-4", "gpt-4", Some(ContentPolicy)),
            vec!["claude", "mistral"]
        );
        // Default fallbacks for any other group.
        assert_eq!(plan("other", "other", Some(ServerError)), vec!["cheap"]);
        // Alias: the requested name's entry first, then the target group's.
        assert_eq!(
            plan("my-alias", "gpt-4", Some(Timeout)),
            vec!["claude", "mistral"]
        );
        let aliased = RouterSettings {
            fallbacks: vec![entry("gpt-4", &["claude"]), entry("my-alias", &["mistral"])],
            ..RouterSettings::default()
        };
        assert_eq!(
            fallback_groups(&aliased, "my-alias", "gpt-4", None),
            vec!["mistral"]
        );
        assert!(fallback_groups(&RouterSettings::default(), "a", "a", None).is_empty());
    }
}

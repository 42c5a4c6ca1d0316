//! Wildcard model names (`*`, `openai/*`) with LiteLLM's matching semantics: every `*` is a
//! greedy `(.*)`, the rest is literal, and the match is anchored at the start only (Python's
//! `re.match`). The deployment's `model` then gets each `*` replaced by the captured text.

/// A compiled wildcard pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    /// Literal pieces between the stars; there is one more piece than there are stars.
    pieces: Vec<String>,
}

impl Pattern {
    /// Compiles a model name; `None` if it has no `*`.
    pub fn new(text: &str) -> Option<Pattern> {
        text.contains('*').then(|| Pattern {
            text: text.to_owned(),
            pieces: text.split('*').map(str::to_owned).collect(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Sort key, most specific first: longer patterns, then more stars (LiteLLM's order).
    pub fn specificity(&self) -> (usize, usize) {
        (self.text.len(), self.pieces.len() - 1)
    }

    /// The text each `*` captured, or `None` if `name` does not match.
    pub fn captures<'t>(&self, name: &'t str) -> Option<Vec<&'t str>> {
        let (first, rest) = self.pieces.split_first()?;
        let remainder = name.strip_prefix(first.as_str())?;
        capture_stars(remainder, rest)
    }
}

/// Matches `text` against `star piece star piece ...`: each star greedy, backtracking as a regex
/// engine would, with no anchor at the end.
fn capture_stars<'t>(text: &'t str, pieces: &[String]) -> Option<Vec<&'t str>> {
    let Some((piece, rest)) = pieces.split_first() else {
        return Some(Vec::new());
    };
    // Candidate ends for this star's capture, longest first (greedy); overlapping
    // occurrences of the next piece count, as they would for a regex.
    let ends: Vec<usize> = text
        .char_indices()
        .map(|(index, _)| index)
        .chain(std::iter::once(text.len()))
        .filter(|index| text[*index..].starts_with(piece.as_str()))
        .rev()
        .collect();
    ends.into_iter().find_map(|end| {
        let mut captures = capture_stars(&text[end + piece.len()..], rest)?;
        captures.insert(0, &text[..end]);
        Some(captures)
    })
}

/// The upstream model for a wildcard deployment: each `*` of `model`, left to right, replaced by
/// the captured text. A model without `*` is used as is; if there are more captures than stars,
/// the requested name is used (LiteLLM's rule, which makes `model: "*"` pass the name through).
pub fn upstream_model(pattern: &Pattern, model: &str, requested: &str) -> String {
    let Some(captures) = pattern.captures(requested) else {
        return requested.to_owned();
    };
    let stars = model.matches('*').count();
    if stars == 0 {
        return model.to_owned();
    }
    if captures.len() > stars {
        return requested.to_owned();
    }
    let mut out = String::with_capacity(model.len() + requested.len());
    let mut captures = captures.into_iter();
    for (index, piece) in model.split('*').enumerate() {
        if index > 0 {
            out.push_str(captures.next().unwrap_or("*"));
        }
        out.push_str(piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> Pattern {
        Pattern::new(text).unwrap()
    }

    #[test]
    fn matching_is_anchored_at_the_start_only() {
        assert_eq!(pattern("*").captures("gpt-4o"), Some(vec!["gpt-4o"]));
        assert_eq!(
            pattern("openai/*").captures("openai/gpt-4o"),
            Some(vec!["gpt-4o"])
        );
        assert_eq!(pattern("openai/*").captures("gpt-4o"), None);
        assert_eq!(pattern("openai/*").captures("xopenai/gpt"), None);
        // Greedy, and not anchored at the end: text after the last literal is ignored.
        assert_eq!(pattern("a*b").captures("axbyb"), Some(vec!["xby"]));
        assert_eq!(pattern("a*b").captures("axbyc"), Some(vec!["x"]));
        assert_eq!(pattern("a*b*").captures("a1b2b3"), Some(vec!["1b2", "3"]));
        assert_eq!(pattern("a*b").captures("ac"), None);
        assert_eq!(pattern("é*").captures("éß"), Some(vec!["ß"]));
        assert_eq!(pattern("*aa").captures("xaaa"), Some(vec!["xa"]));
        assert_eq!(Pattern::new("gpt-4o"), None);
    }

    #[test]
    fn specificity_prefers_longer_then_more_stars() {
        let mut patterns = [pattern("*"), pattern("openai/*"), pattern("o*/*")];
        patterns.sort_by_key(|p| std::cmp::Reverse(p.specificity()));
        let order: Vec<&str> = patterns.iter().map(Pattern::as_str).collect();
        assert_eq!(order, vec!["openai/*", "o*/*", "*"]);
    }

    #[test]
    fn upstream_model_rewriting_matches_litellm_examples() {
        assert_eq!(
            upstream_model(&pattern("*"), "*", "claude-3-haiku"),
            "claude-3-haiku"
        );
        assert_eq!(
            upstream_model(&pattern("*"), "openai/*", "foo"),
            "openai/foo"
        );
        assert_eq!(
            upstream_model(&pattern("*"), "openai/*", "gpt-4o"),
            "openai/gpt-4o"
        );
        assert_eq!(
            upstream_model(&pattern("llmengine/*"), "openai/*", "llmengine/x"),
            "openai/x"
        );
        assert_eq!(
            upstream_model(&pattern("*"), "openai/gpt-4o", "anything"),
            "openai/gpt-4o"
        );
        assert_eq!(upstream_model(&pattern("a*b*"), "openai/*", "a1b2"), "a1b2");
    }
}

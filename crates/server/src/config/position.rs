//! Where in the file a config error is: each error's field path (`models[2].deployments[0].provider`)
//! is looked up in the parsed document and the error is prefixed with `file:line:column`
//! (of the field, or of its nearest enclosing table when the field is missing).

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::ConfigErrors;

/// 1-based line and column (in characters) of the byte `offset` of `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A TOML syntax error as `file:line:column: message`.
pub fn syntax(e: &toml::de::Error, text: &str, file: &str) -> String {
    match e.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            format!("{file}:{line}:{column}: {}", e.message().trim_end())
        }
        None => format!("{file}: {}", e.message().trim_end()),
    }
}

/// Prefixes each error with the position of the field its path names.
pub fn place(errors: ConfigErrors, text: &str, file: &str) -> ConfigErrors {
    let document = DeTable::parse(text).ok();
    ConfigErrors(
        errors
            .0
            .into_iter()
            .map(|error| {
                let at = document.as_ref().and_then(|doc| locate(doc.get_ref(), path_of(&error)?));
                match at {
                    Some(offset) => {
                        let (line, column) = line_column(text, offset);
                        format!("{file}:{line}:{column}: {error}")
                    }
                    None => format!("{file}: {error}"),
                }
            })
            .collect(),
    )
}

/// The field path an error starts with (`server.listen: …` → `server.listen`).
fn path_of(error: &str) -> Option<&str> {
    let (path, _) = error.split_once(':')?;
    let valid =
        !path.is_empty() && path.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']'));
    valid.then_some(path)
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn steps(path: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            steps.push(Step::Key(key));
        }
        while let Some((index, after)) = rest.split_once(']') {
            if let Ok(i) = index.parse() {
                steps.push(Step::Index(i));
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    steps
}

/// The byte offset of the deepest part of `path` the document has.
fn locate(document: &DeTable<'_>, path: &str) -> Option<usize> {
    let mut found: Option<Range<usize>> = None;
    let mut table = Some(document);
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    for step in steps(path) {
        let next = match step {
            Step::Key(name) => {
                let Some(t) = table else { break };
                let Some((key, v)) = t.iter().find(|(k, _)| k.get_ref() == name) else { break };
                found = Some(key.span());
                v
            }
            Step::Index(i) => {
                let Some(DeValue::Array(items)) = value.map(Spanned::get_ref) else { break };
                let Some(item) = items.get(i) else { break };
                found = Some(item.span());
                item
            }
        };
        value = Some(next);
        table = match next.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    found.map(|span| span.start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_count_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, text.find('=').unwrap_or(0)), (1, 3));
        assert_eq!(line_column(text, text.rfind('=').unwrap_or(0)), (2, 4), "columns count characters");
    }

    #[test]
    fn errors_point_at_their_field_or_its_nearest_table() {
        let text = "[server]\nlisten = \"x\"\n\n[[models]]\nid = \"a\"\n\n[[models]]\nid = \"b\"\ndeployments = [ { provider = \"p\", weight = 0 } ]\n";
        let errors = ConfigErrors(vec![
            "server.listen: 'x' is not an address".to_owned(),
            "models[1].deployments[0].weight: must be at least 1".to_owned(),
            "models[0].context_window: required".to_owned(),
            "frobnicate: unknown section".to_owned(),
            "set one of them".to_owned(),
        ]);
        let placed = place(errors, text, "gw.toml").0;
        assert_eq!(placed[0], "gw.toml:2:1: server.listen: 'x' is not an address");
        assert_eq!(placed[1], "gw.toml:9:35: models[1].deployments[0].weight: must be at least 1");
        assert!(placed[2].starts_with("gw.toml:4:") || placed[2].starts_with("gw.toml:5:"), "{}", placed[2]);
        assert_eq!(placed[3], "gw.toml: frobnicate: unknown section");
        assert_eq!(placed[4], "gw.toml: set one of them");
    }
}

//! A cheap map from problem paths to YAML source lines.
//!
//! The YAML parser does not keep the position of each value, so validation problems found
//! after parsing would have no line. This module scans the source text instead: it finds the
//! top-level `forwards:` and `profiles:` keys, the `- ` line that starts each of their items
//! and the `key:` lines inside each item. It understands the block style that people write
//! by hand; for anything else (flow style, for instance) it simply finds nothing, and the
//! problem is reported without a line.

use std::collections::HashMap;

/// The lines found in one YAML source, all 1-based.
#[derive(Debug, Default)]
pub(crate) struct YamlLines {
    /// The line of each top-level key.
    top: HashMap<String, usize>,
    /// The items of each top-level sequence (`forwards`, `profiles`), in order.
    items: HashMap<String, Vec<Item>>,
}

/// One item of a top-level sequence.
#[derive(Debug)]
struct Item {
    /// The line of the item's `- `.
    start: usize,
    /// The line of each key of the item's mapping (first occurrence).
    keys: HashMap<String, usize>,
}

impl YamlLines {
    /// Scans `source` for top-level keys and sequence items.
    pub(crate) fn scan(source: &str) -> Self {
        let mut map = YamlLines::default();
        // The top-level key whose block is being read, and the indentation of its items.
        let mut section: Option<String> = None;
        let mut item_indent: Option<usize> = None;

        for (index, raw) in source.lines().enumerate() {
            let number = index + 1;
            let line = raw.trim_end();
            let content = line.trim_start_matches(' ');
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let indent = line.len() - content.len();

            let is_item = content == "-" || content.starts_with("- ");
            if indent == 0 && !is_item {
                // A top-level key (or a document marker) ends the previous section.
                item_indent = None;
                section = key_of(content).map(str::to_string);
                if let Some(key) = &section {
                    map.top.entry(key.clone()).or_insert(number);
                }
                continue;
            }
            let Some(key) = &section else { continue };

            if is_item && item_indent.is_none_or(|i| i == indent) {
                item_indent = Some(indent);
                let mut item = Item {
                    start: number,
                    keys: HashMap::new(),
                };
                if let Some(k) = key_of(content[1..].trim_start()) {
                    item.keys.insert(k.to_string(), number);
                }
                map.items.entry(key.clone()).or_default().push(item);
            } else if item_indent.is_some_and(|i| indent > i)
                && let Some(item) = map.items.get_mut(key).and_then(|v| v.last_mut())
                && let Some(k) = key_of(content)
            {
                item.keys.entry(k.to_string()).or_insert(number);
            }
        }
        map
    }

    /// The line a problem path points at: `version`, `forwards[2]`, `forwards[2].local_port`
    /// or `profiles[0].forwards[1]` (which points at the profile's `forwards:` line). Falls back
    /// from the field to the item's first line when the field's own line was not found.
    pub(crate) fn line_of(&self, path: &str) -> Option<usize> {
        let Some((section, rest)) = path.split_once('[') else {
            return self.top.get(path).copied();
        };
        let (index, rest) = rest.split_once(']')?;
        let item = self.items.get(section)?.get(index.parse::<usize>().ok()?)?;
        let field = rest
            .strip_prefix('.')
            .map(|f| f.split('[').next().unwrap_or(f));
        field
            .and_then(|f| item.keys.get(f).copied())
            .or(Some(item.start))
    }
}

/// The key of a `key: value` or `key:` line, without quotes, when the line is one.
fn key_of(content: &str) -> Option<&str> {
    let (key, after) = content.split_once(':')?;
    if !(after.is_empty() || after.starts_with([' ', '\t'])) {
        return None;
    }
    let key = key.trim();
    let key = key
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .or_else(|| key.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')))
        .unwrap_or(key);
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    plain.then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_items_and_their_keys() {
        let source = "\
version: 1
# A comment.
forwards:
  - name: a
    target: svc/a

    local_port: 1
  -   name: b
    local_port: 2
profiles:
- name: dev
  forwards:
    - a
";
        let lines = YamlLines::scan(source);
        assert_eq!(lines.line_of("version"), Some(1));
        assert_eq!(lines.line_of("forwards[0]"), Some(4));
        assert_eq!(lines.line_of("forwards[0].name"), Some(4));
        assert_eq!(lines.line_of("forwards[0].local_port"), Some(7));
        assert_eq!(lines.line_of("forwards[1].name"), Some(8));
        assert_eq!(lines.line_of("forwards[1].local_port"), Some(9));
        assert_eq!(lines.line_of("forwards[1].bind"), Some(8));
        assert_eq!(lines.line_of("forwards[2]"), None);
        assert_eq!(lines.line_of("profiles[0].name"), Some(11));
        assert_eq!(lines.line_of("profiles[0].forwards[0]"), Some(12));
    }

    #[test]
    fn finds_nothing_in_flow_style() {
        let lines = YamlLines::scan("{version: 1, forwards: [{name: a}]}");
        assert_eq!(lines.line_of("forwards[0].name"), None);
    }
}

//! Templated matchers of one vuser: the template is rendered when its step runs (once per
//! expect, not per frame) and the matcher built from the rendered text is kept in a small
//! cache, so a regex is compiled once per distinct rendered text, not once per message.
//!
//! Which texts are templates and how values are escaped into a regex is decided by `plan`;
//! this file only renders, builds and caches.

use std::sync::Arc;

use serde_json::Value as Json;

use super::template::{Renderer, Scope};
use crate::engine::error::{ErrorKind, Failure};
use crate::plan::{MatcherTemplate, TemplateId, Text};
use crate::protocol::Matcher;

/// Matchers kept per vuser: a flow has few templated matchers, each usually rendering to one
/// text per vuser (its id, its room), so a handful covers it; more distinct texts (one per
/// loop iteration) are rebuilt, oldest evicted first, and memory stays bounded.
const CACHED: usize = 8;

/// A templated matcher of the program: `slot` tells it apart in the cache.
#[derive(Debug)]
pub(crate) struct TemplatedMatcher {
    pub slot: u32,
    pub template: MatcherTemplate,
}

struct Entry {
    slot: u32,
    /// The rendered text (the `json` values joined by NUL).
    text: String,
    matcher: Arc<Matcher>,
}

/// One vuser's cache of built matchers.
#[derive(Default)]
pub(crate) struct MatcherCache {
    entries: Vec<Entry>,
    /// Where the next entry goes once the cache is full.
    next: usize,
}

impl MatcherCache {
    /// The matcher `templated` renders to in `scope`; `stand_in` is the plan's load-time
    /// matcher (for `json`, its fixed pairs).
    pub fn resolve(
        &mut self,
        renderer: &Renderer,
        scope: &Scope,
        templated: &TemplatedMatcher,
        stand_in: &Matcher,
    ) -> Result<Arc<Matcher>, Failure> {
        let render = |id: &TemplateId| {
            renderer
                .render(&Text::Template(id.clone()), scope)
                .map_err(|e| Failure::new(ErrorKind::Template, e.to_string()))
        };
        let text = match &templated.template {
            MatcherTemplate::Regex(id)
            | MatcherTemplate::Contains(id)
            | MatcherTemplate::Equals(id) => render(id)?,
            MatcherTemplate::Json(pairs) => {
                let mut text = String::new();
                for (_, id) in pairs {
                    text.push_str(&render(id)?);
                    text.push('\0');
                }
                text
            }
        };
        if let Some(entry) = self
            .entries
            .iter()
            .find(|e| e.slot == templated.slot && e.text == text)
        {
            return Ok(Arc::clone(&entry.matcher));
        }
        let matcher = Arc::new(build(&templated.template, &text, stand_in)?);
        let entry = Entry {
            slot: templated.slot,
            text,
            matcher: Arc::clone(&matcher),
        };
        if self.entries.len() < CACHED {
            self.entries.push(entry);
        } else if let Some(slot) = self.entries.get_mut(self.next) {
            *slot = entry;
            self.next = (self.next + 1) % CACHED;
        }
        Ok(matcher)
    }
}

/// The matcher for one rendered text.
fn build(template: &MatcherTemplate, text: &str, stand_in: &Matcher) -> Result<Matcher, Failure> {
    Ok(match template {
        MatcherTemplate::Regex(_) => match regex::Regex::new(text) {
            Ok(regex) => Matcher::regex(regex),
            Err(err) => {
                // Only `| raw` can get here: escaped values always compile.
                let detail = err.to_string();
                let last = detail.lines().last().unwrap_or_default().trim().to_owned();
                return Err(Failure::new(
                    ErrorKind::Template,
                    format!("the rendered regex `{text}` does not compile: {last}"),
                ));
            }
        },
        MatcherTemplate::Contains(_) => Matcher::Contains(text.to_owned()),
        MatcherTemplate::Equals(_) => Matcher::Equals(text.to_owned()),
        MatcherTemplate::Json(templated) => {
            let Matcher::Json(fixed) = stand_in else {
                return Ok(stand_in.clone());
            };
            let mut pairs = fixed.clone();
            for ((index, _), value) in templated.iter().zip(text.split('\0')) {
                if let Some(pair) = pairs.get_mut(*index) {
                    pair.1 = Json::String(value.to_owned());
                }
            }
            Matcher::Json(pairs)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Frame;
    use tokio::time::Instant;

    fn renderer(templates: &[(&str, &str)]) -> Renderer {
        let mut env = minijinja::Environment::new();
        crate::plan::register_functions(&mut env);
        for (name, source) in templates {
            let _ = env.add_template_owned(name.to_string(), source.to_string());
        }
        Renderer::new(
            &crate::plan::Templates { env },
            Arc::from("r"),
            Instant::now(),
            0,
        )
    }

    fn scope(vu: u64) -> Scope {
        Scope::new(
            Default::default(),
            vu,
            "s",
            minijinja::Value::UNDEFINED,
            crate::engine::seed::vuser_rng(1, vu),
        )
    }

    fn matches(m: &Matcher, text: &'static str) -> bool {
        m.matches(&Frame::text(bytes::Bytes::from_static(text.as_bytes())))
    }

    #[test]
    fn renders_per_vuser_and_builds_once_per_text() {
        let r = renderer(&[("c", " u{{ vu.id }} ")]);
        let t = TemplatedMatcher {
            slot: 0,
            template: MatcherTemplate::Contains(TemplateId("c".into())),
        };
        let stand_in = Matcher::Contains(String::new());
        let mut cache = MatcherCache::default();
        let first = cache
            .resolve(&r, &scope(7), &t, &stand_in)
            .expect("resolves");
        assert!(matches(&first, "MSG u7 hi"));
        assert!(!matches(&first, "MSG u17 hi"));
        let again = cache
            .resolve(&r, &scope(7), &t, &stand_in)
            .expect("resolves");
        assert!(
            Arc::ptr_eq(&first, &again),
            "the same text reuses the matcher"
        );
        let other = cache
            .resolve(&r, &scope(8), &t, &stand_in)
            .expect("resolves");
        assert!(matches(&other, "MSG u8 hi"));
    }

    #[test]
    fn the_cache_stays_bounded() {
        let r = renderer(&[("c", "{{ vu.id }}")]);
        let t = TemplatedMatcher {
            slot: 0,
            template: MatcherTemplate::Equals(TemplateId("c".into())),
        };
        let stand_in = Matcher::Equals(String::new());
        let mut cache = MatcherCache::default();
        for vu in 0..100 {
            let m = cache
                .resolve(&r, &scope(vu), &t, &stand_in)
                .expect("resolves");
            assert_eq!(*m, Matcher::Equals(vu.to_string()));
        }
        assert_eq!(cache.entries.len(), CACHED);
    }

    #[test]
    fn json_values_are_replaced_by_their_rendering() {
        let r = renderer(&[("j", "u{{ vu.id }}")]);
        let t = TemplatedMatcher {
            slot: 1,
            template: MatcherTemplate::Json(vec![(1, TemplateId("j".into()))]),
        };
        let stand_in = Matcher::Json(vec![
            ("/type".into(), Json::from("msg")),
            ("/user".into(), Json::from("{{ placeholder }}")),
        ]);
        let mut cache = MatcherCache::default();
        let m = cache
            .resolve(&r, &scope(3), &t, &stand_in)
            .expect("resolves");
        assert!(matches(&m, r#"{"type":"msg","user":"u3"}"#));
        assert!(!matches(&m, r#"{"type":"msg","user":"u4"}"#));
    }

    #[test]
    fn a_raw_value_that_breaks_the_regex_is_a_template_error() {
        let r = renderer(&[("re", "{{ '(' }}")]);
        let t = TemplatedMatcher {
            slot: 0,
            template: MatcherTemplate::Regex(TemplateId("re".into())),
        };
        let stand_in = Matcher::Contains(String::new());
        let err = MatcherCache::default()
            .resolve(&r, &scope(1), &t, &stand_in)
            .err()
            .map(|f| f.kind);
        assert_eq!(err, Some(ErrorKind::Template));
    }
}

//! The demo API's state and rules: token login, and a fixed table of lockers that a user
//! holds, then confirms (books) or cancels; a locker held or booked by someone else is a
//! conflict (409). Owns the token format and the locker state machine; routing, bodies and
//! the knobs are elsewhere.
//!
//! Bounded by construction: a token is `base64url(username).keyed-hash` and is checked by
//! recomputing the hash (nothing is stored per login), and the table has [`ITEM_COUNT`]
//! slots, each holding at most one owner name. Holds and bookings lapse on their own
//! ([`HOLD_TTL`], [`BOOKING_TTL`]) so a long run never fills the table for good.
//! Time is `tokio::time`, so tests can pause it.

use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::time::Instant;

/// Lockers in the table, ids `1..=ITEM_COUNT`.
pub const ITEM_COUNT: usize = 1000;
/// A hold not confirmed within this long lapses and the locker is free again.
pub const HOLD_TTL: Duration = Duration::from_secs(30);
/// A booking lasts this long, then the locker is free again.
pub const BOOKING_TTL: Duration = Duration::from_secs(60);
/// Longest username accepted at login, in bytes.
const MAX_USERNAME_BYTES: usize = 64;

/// Why an API call was refused; each maps to one HTTP status.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the request is malformed.
    BadRequest(String),
    /// 401: bad credentials or token.
    Unauthorized(String),
    /// 404: no such locker.
    NotFound(String),
    /// 409: the locker is not in a state that allows it, for this user.
    Conflict { id: usize, status: &'static str },
}

pub type Answer = Result<Value, Refusal>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Free,
    Held,
    Booked,
}

impl Filter {
    pub fn parse(text: &str) -> Option<Filter> {
        match text {
            "free" => Some(Filter::Free),
            "held" => Some(Filter::Held),
            "booked" => Some(Filter::Booked),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
enum Slot {
    #[default]
    Free,
    Held {
        owner: Box<str>,
        until: Instant,
    },
    Booked {
        owner: Box<str>,
        until: Instant,
    },
}

impl Slot {
    /// Lets a lapsed hold or booking go, then returns the slot.
    fn settle(&mut self, now: Instant) -> &mut Slot {
        if let Slot::Held { until, .. } | Slot::Booked { until, .. } = self
            && *until <= now
        {
            *self = Slot::Free;
        }
        self
    }

    fn status(&self) -> &'static str {
        match self {
            Slot::Free => "free",
            Slot::Held { .. } => "held",
            Slot::Booked { .. } => "booked",
        }
    }

    fn owned_by(&self, user: &str) -> bool {
        match self {
            Slot::Free => false,
            Slot::Held { owner, .. } | Slot::Booked { owner, .. } => &**owner == user,
        }
    }

    fn matches(&self, filter: Filter) -> bool {
        matches!(
            (self, filter),
            (Slot::Free, Filter::Free)
                | (Slot::Held { .. }, Filter::Held)
                | (Slot::Booked { .. }, Filter::Booked)
        )
    }

    /// How `user` sees this locker: whether it is theirs, never who else holds it.
    fn view(&self, id: usize, user: &str, now: Instant) -> Value {
        let mut view = json!({"id": id, "status": self.status(), "mine": self.owned_by(user)});
        if let Slot::Held { until, .. } | Slot::Booked { until, .. } = self {
            view["expires_in_s"] = json!(until.saturating_duration_since(now).as_secs());
        }
        view
    }
}

pub struct Api {
    /// Keys the token hash; random per server, so tokens of one server do not work on
    /// another. A demo, not a security mechanism.
    secret: std::collections::hash_map::RandomState,
    items: Vec<Mutex<Slot>>,
}

impl Api {
    pub fn new() -> Api {
        Api {
            secret: std::collections::hash_map::RandomState::new(),
            items: (0..ITEM_COUNT).map(|_| Mutex::default()).collect(),
        }
    }

    /// Any username (1-64 bytes, no control characters) with any non-empty password gets a
    /// token; an empty password is refused, so clients can test a failed login.
    pub fn login(&self, username: &str, password: &str) -> Answer {
        if username.is_empty()
            || username.len() > MAX_USERNAME_BYTES
            || username.chars().any(char::is_control)
        {
            return Err(Refusal::BadRequest(format!(
                "username must be 1 to {MAX_USERNAME_BYTES} bytes without control characters"
            )));
        }
        if password.is_empty() {
            return Err(Refusal::Unauthorized("invalid credentials".to_string()));
        }
        Ok(json!({
            "access_token": self.token(username),
            "token_type": "Bearer",
            "username": username,
        }))
    }

    fn token(&self, username: &str) -> String {
        let tag = self.secret.hash_one(username);
        format!("{}.{tag:016x}", URL_SAFE_NO_PAD.encode(username))
    }

    /// The user a token was issued to, if this server issued it.
    pub fn user_of(&self, token: &str) -> Option<String> {
        let (name, tag) = token.rsplit_once('.')?;
        let name = String::from_utf8(URL_SAFE_NO_PAD.decode(name).ok()?).ok()?;
        let tag = u64::from_str_radix(tag, 16).ok()?;
        (self.secret.hash_one(name.as_str()) == tag).then_some(name)
    }

    fn slot(&self, id: usize) -> Result<MutexGuard<'_, Slot>, Refusal> {
        let slot = id
            .checked_sub(1)
            .and_then(|index| self.items.get(index))
            .ok_or_else(|| Refusal::NotFound(format!("no locker {id} (ids are 1-{ITEM_COUNT})")))?;
        // A poisoned slot only means a panic elsewhere mid-update of a plain enum: still valid.
        Ok(slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Up to `limit` lockers from id `offset + 1` on, those matching `filter` only.
    pub fn list(&self, user: &str, filter: Option<Filter>, offset: usize, limit: usize) -> Value {
        let now = Instant::now();
        let mut items = Vec::with_capacity(limit.min(ITEM_COUNT));
        for id in offset.saturating_add(1)..=ITEM_COUNT {
            if items.len() >= limit {
                break;
            }
            let Ok(mut slot) = self.slot(id) else { break };
            let slot = slot.settle(now);
            if filter.is_none_or(|filter| slot.matches(filter)) {
                items.push(slot.view(id, user, now));
            }
        }
        json!({"items": items, "total": ITEM_COUNT, "offset": offset, "limit": limit})
    }

    pub fn item(&self, user: &str, id: usize) -> Answer {
        let now = Instant::now();
        Ok(self.slot(id)?.settle(now).view(id, user, now))
    }

    /// Free → held by `user` (again: the hold is renewed); anyone else's → 409.
    pub fn hold(&self, user: &str, id: usize) -> Answer {
        let now = Instant::now();
        let mut guard = self.slot(id)?;
        let slot = guard.settle(now);
        let free_or_own_hold = match slot {
            Slot::Free => true,
            Slot::Held { owner, .. } => &**owner == user,
            Slot::Booked { .. } => false,
        };
        if free_or_own_hold {
            *slot = Slot::Held {
                owner: user.into(),
                until: now + HOLD_TTL,
            };
            Ok(slot.view(id, user, now))
        } else {
            Err(Refusal::Conflict {
                id,
                status: slot.status(),
            })
        }
    }

    /// Held by `user` → booked (already booked by them: unchanged); otherwise 409.
    pub fn confirm(&self, user: &str, id: usize) -> Answer {
        let now = Instant::now();
        let mut guard = self.slot(id)?;
        let slot = guard.settle(now);
        match slot {
            Slot::Held { owner, .. } if &**owner == user => {
                *slot = Slot::Booked {
                    owner: user.into(),
                    until: now + BOOKING_TTL,
                };
                Ok(slot.view(id, user, now))
            }
            Slot::Booked { owner, .. } if &**owner == user => Ok(slot.view(id, user, now)),
            other => Err(Refusal::Conflict {
                id,
                status: other.status(),
            }),
        }
    }

    /// Held or booked by `user` → free; otherwise 409.
    pub fn cancel(&self, user: &str, id: usize) -> Answer {
        let now = Instant::now();
        let mut guard = self.slot(id)?;
        let slot = guard.settle(now);
        if slot.owned_by(user) {
            *slot = Slot::Free;
            Ok(slot.view(id, user, now))
        } else {
            Err(Refusal::Conflict {
                id,
                status: slot.status(),
            })
        }
    }

    /// Every locker `user` holds or has booked.
    pub fn mine(&self, user: &str) -> Value {
        let now = Instant::now();
        let items: Vec<Value> = (1..=ITEM_COUNT)
            .filter_map(|id| {
                let mut slot = self.slot(id).ok()?;
                let slot = slot.settle(now);
                slot.owned_by(user).then(|| slot.view(id, user, now))
            })
            .collect();
        json!({"username": user, "items": items})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(answer: &Answer) -> &str {
        answer.as_ref().expect("accepted")["status"]
            .as_str()
            .expect("status")
    }

    #[test]
    fn tokens_verify_only_on_the_issuing_server() {
        let api = Api::new();
        let token = api.login("ann.o'neil@x", "pw").expect("login")["access_token"]
            .as_str()
            .expect("token")
            .to_string();
        assert_eq!(api.user_of(&token).as_deref(), Some("ann.o'neil@x"));
        assert_eq!(Api::new().user_of(&token), None);
        let forged = format!("{}.{}", URL_SAFE_NO_PAD.encode("bob"), "0".repeat(16));
        assert_eq!(api.user_of(&forged), None);
        assert_eq!(api.user_of("garbage"), None);
        assert!(matches!(
            api.login("ann", ""),
            Err(Refusal::Unauthorized(_))
        ));
        assert!(matches!(api.login("", "pw"), Err(Refusal::BadRequest(_))));
        assert!(matches!(
            api.login(&"x".repeat(65), "pw"),
            Err(Refusal::BadRequest(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn lockers_follow_hold_confirm_cancel_with_conflicts() {
        let api = Api::new();
        assert_eq!(status(&api.hold("ann", 7)), "held");
        assert_eq!(
            api.hold("bob", 7),
            Err(Refusal::Conflict {
                id: 7,
                status: "held"
            })
        );
        assert_eq!(
            api.confirm("bob", 7),
            Err(Refusal::Conflict {
                id: 7,
                status: "held"
            })
        );
        assert_eq!(status(&api.hold("ann", 7)), "held", "a hold renews");
        assert_eq!(status(&api.confirm("ann", 7)), "booked");
        assert_eq!(status(&api.confirm("ann", 7)), "booked", "idempotent");
        assert!(api.cancel("bob", 7).is_err());
        let mine = api.mine("ann");
        assert_eq!(mine["items"][0]["id"], 7);
        assert_eq!(mine["items"][0]["mine"], true);
        assert_eq!(api.mine("bob")["items"], json!([]));
        assert_eq!(status(&api.cancel("ann", 7)), "free");
        assert!(matches!(api.hold("ann", 0), Err(Refusal::NotFound(_))));
        assert!(matches!(
            api.hold("ann", ITEM_COUNT + 1),
            Err(Refusal::NotFound(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn holds_and_bookings_lapse() {
        let api = Api::new();
        api.hold("ann", 1).expect("held");
        tokio::time::advance(HOLD_TTL).await;
        assert_eq!(status(&api.hold("bob", 1)), "held", "ann's hold lapsed");
        api.confirm("bob", 1).expect("booked");
        tokio::time::advance(BOOKING_TTL - Duration::from_secs(1)).await;
        assert_eq!(api.item("ann", 1).expect("item")["expires_in_s"], 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(status(&api.item("ann", 1)), "free");
    }

    #[tokio::test(start_paused = true)]
    async fn lists_page_and_filter() {
        let api = Api::new();
        api.hold("ann", 2).expect("held");
        let page = api.list("ann", None, 0, 3);
        let ids: Vec<_> = page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| item["id"].as_u64().expect("id"))
            .collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(page["items"][1]["mine"], true);
        let held = api.list("bob", Some(Filter::Held), 0, 10);
        assert_eq!(
            held["items"],
            json!([{"id": 2, "status": "held", "mine": false, "expires_in_s": 30}])
        );
        let tail = api.list("ann", Some(Filter::Free), ITEM_COUNT - 1, 10);
        assert_eq!(tail["items"].as_array().map(Vec::len), Some(1));
    }
}

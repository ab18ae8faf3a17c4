//! The pure template functions: `random_int(a, b)`, `random()`, `random_string(n)`, `words(n)`,
//! `uuid()`, `now_ms()`. `stamp()` needs the run's identity and clock, so the engine registers it.
//! Also what a variable name templates can use looks like ([`is_identifier`]).
//!
//! The random functions draw from the generator of the render running on this thread, which
//! the engine lends for each render with [`with_rng`] (the vuser's seeded stream, so `--seed`
//! replays them). minijinja functions are global to the environment and see nothing of the
//! caller but the template context, and a context object must be `Sync`, which would mean a
//! lock around every draw; a thread-local is free and correct because a render is synchronous:
//! it starts and ends on one thread with no `.await` in between, so no other vuser's render can
//! run on this thread meanwhile. Outside a lent generator (plan checks, tests) they draw from an
//! unseeded one.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use minijinja::{Environment, Error, ErrorKind};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

thread_local! {
    /// The generator lent to the render running on this thread, if any.
    static CURRENT: RefCell<Option<Xoshiro256PlusPlus>> = const { RefCell::new(None) };
}

/// Runs `render` with `rng` as the source of the random template functions; `rng` advances by
/// what they drew. `render` must not yield to other tasks (rendering never does).
pub fn with_rng<R>(rng: &mut Xoshiro256PlusPlus, render: impl FnOnce() -> R) -> R {
    /// Puts back the outer generator even if `render` panics.
    struct Restore(Option<Xoshiro256PlusPlus>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            CURRENT.with_borrow_mut(|slot| *slot = outer);
        }
    }
    // The generator is 32 bytes: copying it in and out is cheaper than any sharing.
    let _restore = Restore(CURRENT.replace(Some(rng.clone())));
    let out = render();
    if let Some(advanced) = CURRENT.take() {
        *rng = advanced;
    }
    out
}

/// Calls `f` with the lent generator, or an unseeded one when none is lent.
fn draw<T>(f: impl FnOnce(&mut Xoshiro256PlusPlus) -> T) -> T {
    CURRENT.with_borrow_mut(|slot| match slot {
        Some(rng) => f(rng),
        None => f(&mut Xoshiro256PlusPlus::seed_from_u64(rand::random())),
    })
}

/// Every function name a template may call, including `stamp` (registered by the engine).
pub const FUNCTION_NAMES: &[&str] = &[
    "random_int",
    "random_string",
    "words",
    "uuid",
    "now_ms",
    "random",
    "stamp",
];

/// Longest string `random_string` and `words` will produce, so a typo cannot exhaust memory.
const MAX_GENERATED: usize = 1 << 20;

const WORDS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "hello", "world", "chat", "room",
    "message", "server", "load", "test", "quick", "brown", "fox", "jumps", "over", "lazy", "dog",
    "coffee", "music", "games", "lobby", "night", "morning", "river", "stone", "cloud", "rain",
    "sun", "green", "blue", "red", "yellow", "fast", "slow", "big", "small", "happy", "late",
    "early", "again",
];

const ALPHANUMERIC: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Registers the pure functions on `env`.
pub fn register_functions(env: &mut Environment<'_>) {
    env.add_function("random_int", random_int);
    env.add_function("random_string", random_string);
    env.add_function("words", words);
    env.add_function("uuid", uuid);
    env.add_function("now_ms", now_ms);
    env.add_function("random", random);
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

/// A uniform integer in `[low, high]`.
pub fn random_int(low: i64, high: i64) -> Result<i64, Error> {
    if low > high {
        return Err(invalid(format!(
            "random_int({low}, {high}): the first bound must not exceed the second"
        )));
    }
    Ok(draw(|rng| rng.random_range(low..=high)))
}

/// A uniform float in `[0, 1)`: `if: "random() < 0.3"`.
pub fn random() -> f64 {
    draw(|rng| rng.random::<f64>())
}

/// `len` random ASCII letters and digits.
pub fn random_string(len: usize) -> Result<String, Error> {
    if len > MAX_GENERATED {
        return Err(invalid(format!(
            "random_string({len}): at most {MAX_GENERATED} characters"
        )));
    }
    Ok(draw(|rng| {
        (0..len)
            .map(|_| {
                let i = rng.random_range(0..ALPHANUMERIC.len());
                ALPHANUMERIC.get(i).copied().unwrap_or(b'a') as char
            })
            .collect()
    }))
}

/// `count` random words separated by spaces.
pub fn words(count: usize) -> Result<String, Error> {
    if count > MAX_GENERATED / 16 {
        return Err(invalid(format!("words({count}): too many words")));
    }
    let picked: Vec<&str> = draw(|rng| {
        (0..count)
            .map(|_| {
                let i = rng.random_range(0..WORDS.len());
                WORDS.get(i).copied().unwrap_or("word")
            })
            .collect()
    });
    Ok(picked.join(" "))
}

/// A random (version 4) UUID.
pub fn uuid() -> String {
    let mut bytes: [u8; 16] = draw(|rng| rng.random());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A name templates can use as a variable: a letter or `_`, then letters, digits, `_`.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_render_in_templates() {
        let mut env = Environment::new();
        register_functions(&mut env);
        let out = env
            .render_str(
                "{{ random_int(3, 3) }}|{{ random_string(5)|length }}|{{ words(4) }}|{{ uuid()|length }}",
                (),
            )
            .unwrap();
        let parts: Vec<&str> = out.split('|').collect();
        assert_eq!(parts[0], "3");
        assert_eq!(parts[1], "5");
        assert_eq!(parts[2].split(' ').count(), 4);
        assert_eq!(parts[3], "36");
        assert!(env.render_str("{{ random_int(5, 1) }}", ()).is_err());
        assert!(
            env.render_str("{{ random_string(100000000) }}", ())
                .is_err()
        );
    }

    #[test]
    fn a_lent_generator_replays_and_advances() {
        let mut env = Environment::new();
        register_functions(&mut env);
        let source =
            "{{ random_int(1, 1000000) }} {{ random_string(8) }} {{ words(3) }} {{ uuid() }}";
        let render = |rng: &mut Xoshiro256PlusPlus| {
            with_rng(rng, || env.render_str(source, ()).unwrap_or_default())
        };
        let (mut a, mut b) = (
            Xoshiro256PlusPlus::seed_from_u64(9),
            Xoshiro256PlusPlus::seed_from_u64(9),
        );
        let first = render(&mut a);
        assert_eq!(first, render(&mut b));
        // The lent generator moved on: the next render differs, and again matches its twin.
        let second = render(&mut a);
        assert_ne!(first, second);
        assert_eq!(second, render(&mut b));
        assert_ne!(first, render(&mut Xoshiro256PlusPlus::seed_from_u64(10)));
        // Nothing is left lent after a render.
        assert!(CURRENT.with_borrow(Option::is_none));
    }

    #[test]
    fn uuid_is_version_4() {
        let id = uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(id.chars().nth(14), Some('4'));
    }
}

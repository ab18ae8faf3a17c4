//! [`TypeMask`]: which packet type ids a matcher accepts — one id, or every id whose bits
//! under a mask equal a value (MQTT keeps flags in the low bits of its type byte, so a
//! PUBLISH is any of 0x30..=0x3F).

use std::fmt;

/// Accepts a type id when `id & mask == value`. An exact id is the mask of all ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TypeMask {
    value: u32,
    mask: u32,
}

impl TypeMask {
    /// Exactly this id.
    pub const fn exact(id: u32) -> Self {
        TypeMask {
            value: id,
            mask: u32::MAX,
        }
    }

    /// The ids whose bits under `mask` equal `value`; `None` when `value` has bits outside
    /// `mask` (no id could ever match).
    pub const fn masked(value: u32, mask: u32) -> Option<Self> {
        if value & !mask != 0 {
            return None;
        }
        Some(TypeMask { value, mask })
    }

    pub const fn value(&self) -> u32 {
        self.value
    }

    pub const fn mask(&self) -> u32 {
        self.mask
    }

    /// Whether a frame with this type id matches; a frame without one never does.
    pub fn matches(&self, type_id: Option<u32>) -> bool {
        type_id.is_some_and(|id| id & self.mask == self.value)
    }
}

/// `type 3`, or `type 0x30/0xf0` for a mask.
impl fmt::Display for TypeMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mask == u32::MAX {
            write!(f, "type {}", self.value)
        } else {
            write!(f, "type {:#x}/{:#x}", self.value, self.mask)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_mask_matches_a_range_of_mqtt_types() {
        let publish = TypeMask::masked(48, 240).expect("value within mask");
        for id in 0x30..=0x3f {
            assert!(publish.matches(Some(id)), "{id:#x}");
        }
        for id in [0x00, 0x2f, 0x40, 0xff] {
            assert!(!publish.matches(Some(id)), "{id:#x}");
        }
        assert!(!publish.matches(None), "a frame without a type");
        // Only the bits under the mask are compared.
        assert!(publish.matches(Some(0x130)));
        assert_eq!(publish.to_string(), "type 0x30/0xf0");
    }

    #[test]
    fn an_exact_type_is_the_full_mask() {
        let three = TypeMask::exact(3);
        assert!(three.matches(Some(3)));
        assert!(!three.matches(Some(3 | 1 << 8)));
        assert!(!three.matches(None));
        assert_eq!(three, TypeMask::masked(3, u32::MAX).expect("full mask"));
        assert_eq!(three.to_string(), "type 3");
    }

    #[test]
    fn a_value_outside_its_mask_is_refused() {
        assert_eq!(TypeMask::masked(0x31, 0xf0), None);
        assert_eq!(TypeMask::masked(1, 0), None);
        // Mask 0 with value 0 accepts every typed frame.
        assert!(TypeMask::masked(0, 0).expect("valid").matches(Some(12345)));
    }

    proptest! {
        #[test]
        fn masking_is_bitwise_equality(value in any::<u32>(), mask in any::<u32>(), id in any::<u32>()) {
            let m = TypeMask::masked(value & mask, mask).expect("value within mask");
            prop_assert_eq!(m.matches(Some(id)), (0..32).all(|bit| {
                let b = 1u32 << bit;
                mask & b == 0 || (id & b) == (value & b)
            }));
        }
    }
}

//! Money in fen (1/100 yuan) and rates, with half-up rounding done in `rust_decimal`.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};
use std::str::FromStr;

use bincode::{Decode, Encode};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest amount any input may carry: one trillion yuan, in fen.
pub const AMOUNT_FEN_MAX: i64 = 100_000_000_000_000;

/// The largest value any running total the state keeps may reach (an account's inflow or
/// outflow, a region's account flows, a fund's flows, a member's yearly counters): ten thousand
/// times `AMOUNT_FEN_MAX`, 10^16 yuan. `decide` refuses a command whose events would carry a
/// total past it (`total_overflow`). Nine such totals still add up within `i64`, so sums and
/// differences of a few totals and amounts never overflow.
pub const TOTAL_FEN_MAX: i64 = 1_000_000_000_000_000_000;

/// An amount of money, held exactly as a whole number of fen.
///
/// Amounts cross every boundary (commands, results, policy files) as decimal strings with at
/// most two places, and are stored in events as the integer fen: exact and cheap to decode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Money {
    fen: i64,
}

impl Money {
    pub const ZERO: Money = Money { fen: 0 };

    pub const fn from_fen(fen: i64) -> Money {
        Money { fen }
    }

    pub const fn fen(self) -> i64 {
        self.fen
    }

    pub fn yuan(yuan: i64) -> Money {
        Money { fen: yuan * 100 }
    }

    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.fen, 2)
    }

    pub fn is_negative(self) -> bool {
        self.fen < 0
    }

    /// This amount times `rate`, rounded half up (四舍五入) to the fen.
    pub fn times(self, rate: Rate) -> Money {
        let exact = self.to_decimal() * rate.0;
        Money::from_rounded_decimal(exact)
    }

    fn from_rounded_decimal(value: Decimal) -> Money {
        let rounded = value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
        let fen = rounded * Decimal::ONE_HUNDRED;
        let fen: i64 = fen
            .trunc()
            .try_into()
            .expect("products of bounded amounts and rates in [0, 1] fit in i64 fen");
        Money { fen }
    }

    pub fn min(self, other: Money) -> Money {
        std::cmp::min(self, other)
    }

    pub fn max(self, other: Money) -> Money {
        std::cmp::max(self, other)
    }

    /// `self + other`, or `None` where it would not fit in `i64` fen.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.fen.checked_add(other.fen).map(Money::from_fen)
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.fen.checked_sub(other.fen).map(Money::from_fen)
    }

    /// `self - other`, but never below zero.
    pub fn saturating_sub(self, other: Money) -> Money {
        (self - other).max(Money::ZERO)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_decimal())
    }
}

/// Why a string is not an amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmountError(pub String);

impl fmt::Display for AmountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Money {
    type Err = AmountError;

    /// Accepts a plain decimal string with at most two places ("2800", "2800.5", "-3.20").
    fn from_str(text: &str) -> Result<Money, AmountError> {
        let bad = |why: &str| AmountError(format!("amount '{text}' {why}"));
        let plain = text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
        if text.is_empty() || text.len() > 24 || !plain {
            return Err(bad("is not a decimal number like \"2800.00\""));
        }
        let value = Decimal::from_str_exact(text).map_err(|_| bad("is not a decimal number"))?;
        if value.normalize().scale() > 2 {
            return Err(bad("has more than two decimal places"));
        }
        let fen: i64 = (value * Decimal::ONE_HUNDRED)
            .trunc()
            .try_into()
            .map_err(|_| bad("is too large"))?;
        if fen.abs() > AMOUNT_FEN_MAX {
            return Err(bad("is larger than 1000000000000.00"));
        }
        Ok(Money { fen })
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "malformed_amount: amounts are decimal strings like \"2800.00\"",
            )
        })?;
        text.parse()
            .map_err(|e: AmountError| serde::de::Error::custom(format!("malformed_amount: {e}")))
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        self.checked_add(rhs)
            .expect("sums of bounded amounts fit in i64 fen")
    }
}

impl Sub for Money {
    type Output = Money;
    fn sub(self, rhs: Money) -> Money {
        Money {
            fen: self
                .fen
                .checked_sub(rhs.fen)
                .expect("differences of bounded amounts fit in i64 fen"),
        }
    }
}

impl Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money { fen: -self.fen }
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        *self = *self + rhs;
    }
}

impl SubAssign for Money {
    fn sub_assign(&mut self, rhs: Money) {
        *self = *self - rhs;
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, |a, b| a + b)
    }
}

/// A ratio between 0 and 1 (a reimbursement ratio, a share of the contribution base).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(Decimal);

impl Rate {
    pub fn new(value: Decimal) -> Option<Rate> {
        (value >= Decimal::ZERO && value <= Decimal::ONE && value.scale() <= 6)
            .then_some(Rate(value))
    }

    pub fn as_decimal(self) -> Decimal {
        self.0
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(text: &str) -> Result<Rate, String> {
        let value = Decimal::from_str_exact(text)
            .map_err(|_| format!("rate '{text}' is not a decimal number"))?;
        Rate::new(value.normalize())
            .ok_or_else(|| format!("rate '{text}' must lie in [0, 1] with at most 6 places"))
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Rate, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// In events a rate is its decimal mantissa and scale: exact, and independent of rust_decimal's
/// in-memory layout.
impl Encode for Rate {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        let mantissa =
            i64::try_from(self.0.mantissa()).expect("a rate in [0, 1] with 6 places fits in i64");
        mantissa.encode(encoder)?;
        self.0.scale().encode(encoder)
    }
}

impl<Context> Decode<Context> for Rate {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Rate, bincode::error::DecodeError> {
        let mantissa = i64::decode(decoder)?;
        let scale = u32::decode(decoder)?;
        if scale > 6 {
            return Err(bincode::error::DecodeError::Other("rate scale above 6"));
        }
        Rate::new(Decimal::new(mantissa, scale))
            .ok_or(bincode::error::DecodeError::Other("rate outside [0, 1]"))
    }
}
bincode::impl_borrow_decode!(Rate);

/// An exact yuan amount rounded half up (四舍五入) to the fen.
pub fn round_half_up(yuan: Decimal) -> Money {
    Money::from_rounded_decimal(yuan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Money {
        text.parse().expect("test amount")
    }

    #[test]
    fn parses_and_prints_two_places() {
        assert_eq!(m("2800").to_string(), "2800.00");
        assert_eq!(m("0.5").fen(), 50);
        assert_eq!(m("-3.20").fen(), -320);
    }

    #[test]
    fn refuses_three_places_exponents_and_junk() {
        for bad in [
            "1.234",
            "1e3",
            "",
            "abc",
            " 1",
            "1,000",
            "NaN",
            "99999999999999999999",
        ] {
            assert!(bad.parse::<Money>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn rounds_half_up_to_the_fen() {
        let rate: Rate = "0.6".parse().unwrap();
        // 0.01 * 0.6 = 0.006 -> 0.01; 0.05 * 0.5 = 0.025 -> 0.03
        assert_eq!(m("0.01").times(rate), m("0.01"));
        assert_eq!(m("0.05").times("0.5".parse().unwrap()), m("0.03"));
        assert_eq!(m("0.04").times("0.5".parse().unwrap()), m("0.02"));
        assert_eq!(m("1234.57").times("0.02".parse().unwrap()), m("24.69"));
    }
}

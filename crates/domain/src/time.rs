//! Calendar days and months as small integers: exact, ordered, and cheap to encode.

use std::fmt;
use std::str::FromStr;

use bincode::{Decode, Encode};
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The earliest and latest years any input may name.
pub const YEAR_MIN: i32 = 1900;
pub const YEAR_MAX: i32 = 2200;

/// A calendar day, as days since 0001-01-01 (chrono's day count from the common era).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode)]
pub struct Day(i32);

/// Decoding checks the day lies in the years inputs may name, so a decoded day always displays.
impl<Context> Decode<Context> for Day {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Day, bincode::error::DecodeError> {
        let days = i32::decode(decoder)?;
        NaiveDate::from_num_days_from_ce_opt(days)
            .filter(|d| (YEAR_MIN..=YEAR_MAX).contains(&d.year()))
            .map(Day::from_date)
            .ok_or(bincode::error::DecodeError::Other(
                "day outside 1900..=2200",
            ))
    }
}
bincode::impl_borrow_decode!(Day);

impl Day {
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Day> {
        if !(YEAR_MIN..=YEAR_MAX).contains(&year) {
            return None;
        }
        NaiveDate::from_ymd_opt(year, month, day).map(Day::from_date)
    }

    pub fn from_date(date: NaiveDate) -> Day {
        Day(date.num_days_from_ce())
    }

    pub fn date(self) -> NaiveDate {
        NaiveDate::from_num_days_from_ce_opt(self.0).expect("a Day is built from a valid date")
    }

    pub fn year(self) -> i32 {
        self.date().year()
    }

    pub fn month(self) -> Month {
        let date = self.date();
        Month::new(date.year(), date.month()).expect("a valid date has a valid month")
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.date().format("%Y-%m-%d"))
    }
}

impl FromStr for Day {
    type Err = String;
    fn from_str(text: &str) -> Result<Day, String> {
        let bad = || {
            format!("date '{text}' is not a day like 2024-03-31 between {YEAR_MIN} and {YEAR_MAX}")
        };
        if text.len() != 10 {
            return Err(bad());
        }
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| bad())?;
        Day::from_ymd(date.year(), date.month(), date.day()).ok_or_else(bad)
    }
}

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Day, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom("malformed_date: dates are strings like \"2024-03-31\"")
        })?;
        text.parse()
            .map_err(|e: String| serde::de::Error::custom(format!("malformed_date: {e}")))
    }
}

/// A calendar month, as `year * 12 + (month - 1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode)]
pub struct Month(i32);

impl<Context> Decode<Context> for Month {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Month, bincode::error::DecodeError> {
        let index = i32::decode(decoder)?;
        Month::new(index.div_euclid(12), index.rem_euclid(12) as u32 + 1).ok_or(
            bincode::error::DecodeError::Other("month outside 1900..=2200"),
        )
    }
}
bincode::impl_borrow_decode!(Month);

impl Month {
    pub fn new(year: i32, month: u32) -> Option<Month> {
        ((YEAR_MIN..=YEAR_MAX).contains(&year) && (1..=12).contains(&month))
            .then(|| Month(year * 12 + month as i32 - 1))
    }

    pub fn year(self) -> i32 {
        self.0.div_euclid(12)
    }

    /// 1 to 12.
    pub fn month_of_year(self) -> u32 {
        self.0.rem_euclid(12) as u32 + 1
    }

    pub fn first_day(self) -> Day {
        Day::from_ymd(self.year(), self.month_of_year(), 1).expect("a valid month has a first day")
    }

    pub fn last_day(self) -> Day {
        let next = Month(self.0 + 1);
        let first_next = NaiveDate::from_ymd_opt(next.year(), next.month_of_year(), 1)
            .expect("the month after a valid month has a first day");
        Day::from_date(
            first_next
                .pred_opt()
                .expect("a first day has a day before it"),
        )
    }

    /// Whole months from `earlier` to `self` (negative if `earlier` is later).
    pub fn months_since(self, earlier: Month) -> i32 {
        self.0 - earlier.0
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year(), self.month_of_year())
    }
}

impl FromStr for Month {
    type Err = String;
    fn from_str(text: &str) -> Result<Month, String> {
        let bad = || {
            format!("month '{text}' is not a month like 2024-03 between {YEAR_MIN} and {YEAR_MAX}")
        };
        let (year, month) = text.split_once('-').ok_or_else(bad)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(bad());
        }
        let year: i32 = year.parse().map_err(|_| bad())?;
        let month: u32 = month.parse().map_err(|_| bad())?;
        Month::new(year, month).ok_or_else(bad)
    }
}

impl Serialize for Month {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Month {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Month, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom("malformed_date: months are strings like \"2024-03\"")
        })?;
        text.parse()
            .map_err(|e: String| serde::de::Error::custom(format!("malformed_date: {e}")))
    }
}

/// The age a member counts as in `month`: a member turns N in the calendar month of their N-th
/// birthday (so "70 and over" applies from that whole month on).
pub fn age_in_month(born: Day, month: Month) -> i32 {
    month.months_since(born.month()).div_euclid(12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_seventy_in_the_birthday_month() {
        let born: Day = "1954-06-30".parse().unwrap();
        assert_eq!(age_in_month(born, "2024-05".parse().unwrap()), 69);
        assert_eq!(age_in_month(born, "2024-06".parse().unwrap()), 70);
    }

    #[test]
    fn months_and_days_round_trip() {
        let month: Month = "2024-02".parse().unwrap();
        assert_eq!(month.last_day().to_string(), "2024-02-29");
        assert_eq!(month.first_day().to_string(), "2024-02-01");
        assert!("2024-13".parse::<Month>().is_err());
        assert!("2024-02-30".parse::<Day>().is_err());
        assert!("3024-01-01".parse::<Day>().is_err());
    }
}

//! The words of text for people: the language it is written in ([`Lang`]: Chinese unless asked
//! otherwise), amounts with their unit and digit grouping ([`money`], the one formatter of
//! amounts in text), the names of the ledger's codes in each language ([`code`]), and the width
//! a terminal gives a text (a Chinese character takes two columns: [`width`], [`pad`]).
//!
//! What it is not for: JSON. Answers printed with `--json` keep English keys, plain decimal
//! strings and the codes themselves; only text goes through here.

/// The language of text output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    /// Chinese (the default): the policy's own terms.
    #[default]
    Zh,
    /// English.
    En,
}

/// The environment variable choosing the language (`zh` or `en`) when `--lang` is not given.
pub const LANG_VAR: &str = "GONGJI_LANG";

impl Lang {
    /// `zh` or `en`.
    pub fn parse(text: &str) -> Option<Lang> {
        match text {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The text in this language.
    pub fn pick(self, zh: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
}

/// An amount as text for people: digits grouped by thousands and the unit after it
/// (`95,230,028.79 元`, in English `95,230,028.79 yuan`). `amount` is a decimal string as the
/// ledger writes amounts (`-1234.50`); anything else is shown as it is.
pub fn money(amount: &str, lang: Lang) -> String {
    format!("{} {}", grouped(amount), lang.pick("元", "yuan"))
}

/// An amount of fen as text for people ([`money`]).
pub fn money_fen(fen: i64, lang: Lang) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let fen = fen.unsigned_abs();
    money(&format!("{sign}{}.{:02}", fen / 100, fen % 100), lang)
}

/// `amount`'s whole part grouped by thousands with commas; text that is not a decimal number
/// is returned as it is.
fn grouped(amount: &str) -> String {
    let (sign, unsigned) = match amount.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", amount),
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return amount.to_string();
    }
    let mut out = String::with_capacity(amount.len() + whole.len() / 3);
    out.push_str(sign);
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if let Some(fraction) = fraction {
        out.push('.');
        out.push_str(fraction);
    }
    out
}

/// The columns a terminal gives `text`: two for a wide (East Asian) character, one otherwise.
pub fn width(text: &str) -> usize {
    text.chars().map(|c| if wide(c) { 2 } else { 1 }).sum()
}

/// Whether a terminal shows `c` two columns wide: CJK ideographs and punctuation, kana,
/// Hangul, full-width forms.
fn wide(c: char) -> bool {
    matches!(c,
        '\u{1100}'..='\u{115f}'
        | '\u{2e80}'..='\u{a4cf}'
        | '\u{ac00}'..='\u{d7a3}'
        | '\u{f900}'..='\u{faff}'
        | '\u{fe30}'..='\u{fe4f}'
        | '\u{ff00}'..='\u{ff60}'
        | '\u{ffe0}'..='\u{ffe6}'
        | '\u{20000}'..='\u{3fffd}')
}

/// `text` padded with spaces to `columns` terminal columns ([`width`]).
pub fn pad(text: &str, columns: usize) -> String {
    let shown = width(text);
    format!("{text}{}", " ".repeat(columns.saturating_sub(shown)))
}

/// `label  value` lines, the values aligned in one column (labels padded to the widest label
/// that has a value, [`width`]); a row with an empty value is its label alone (a heading).
pub fn aligned(rows: &[(String, String)]) -> Vec<String> {
    let columns = rows
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(label, _)| width(label))
        .max()
        .unwrap_or(0);
    rows.iter()
        .map(|(label, value)| {
            if value.is_empty() {
                label.clone()
            } else {
                format!("{}  {value}", pad(label, columns))
            }
        })
        .collect()
}

/// A vocabulary of codes: each code with its Chinese name. English text shows the code itself.
pub type Vocabulary = &'static [(&'static str, &'static str)];

/// 人员类别: a member's status.
pub const STATUS: Vocabulary = &[("active", "在职"), ("retired", "退休")];

/// 参保方式: how a member is insured.
pub const SCHEME: Vocabulary = &[
    ("employer", "随单位参保"),
    ("individual_tier1", "个人参保一档"),
    ("individual_tier2", "个人参保二档"),
    ("lump_sum", "二档趸缴"),
];

/// How a claim reached the fund.
pub const CHANNEL: Vocabulary = &[
    ("institution", "定点医疗机构"),
    ("pharmacy", "定点零售药店"),
    ("manual", "手工报销"),
];

/// 机构类别: the kind of place a claim was settled at.
pub const INSTITUTION_KIND: Vocabulary = &[
    ("grassroots", "基层医疗机构"),
    ("hospital", "医院"),
    ("pharmacy", "零售药店"),
];

/// 个人账户使用范围: what an account payment is for.
pub const PURPOSE: Vocabulary = &[
    ("institution", "定点医疗机构"),
    ("pharmacy", "定点零售药店"),
    ("resident_premium", "城乡居民医保个人缴费"),
    ("ltc_premium", "长期护理保险个人缴费"),
    ("large_amount_premium", "大额医疗互助个人缴费"),
    ("public_health", "公共卫生"),
    ("fitness", "体育健身"),
    ("wellness", "养生保健"),
];

/// 家庭共济: a relative's relation to the account holder.
pub const RELATION: Vocabulary = &[
    ("spouse", "配偶"),
    ("parent", "父母"),
    ("child", "子女"),
    ("sibling", "兄弟姐妹"),
    ("grandparent", "祖父母、外祖父母"),
    ("grandchild", "孙子女、外孙子女"),
];

/// The two funds of a region.
pub const FUND: Vocabulary = &[("pooled", "统筹基金"), ("large_amount", "大额医疗互助基金")];

/// 参保状态: an account's state.
pub const STATE: Vocabulary = &[
    ("open", "正常"),
    ("deceased", "已冻结（死亡）"),
    ("closed", "已注销"),
];

/// Who paid a monthly credit.
pub const CREDIT_SOURCE: Vocabulary = &[
    ("contribution", "个人缴费"),
    ("pooled_fund", "统筹基金"),
    ("lump_sum", "趸缴资金"),
];

/// What a reversal undid.
pub const REVERSAL_KIND: Vocabulary = &[("claim", "门诊结算"), ("account_payment", "个人账户支付")];

/// The kinds of event in the log.
pub const EVENT: Vocabulary = &[
    ("policy_loaded", "政策载入"),
    ("enrolled", "参保登记"),
    ("retired", "退休"),
    ("account_credited", "个人账户划入"),
    ("pooled_contributed", "统筹基金缴费"),
    ("pooled_credit_paid", "统筹基金划入账户"),
    ("claim_settled", "门诊结算"),
    ("fund_claim_paid", "基金支付"),
    ("family_bound", "家庭共济绑定"),
    ("family_unbound", "家庭共济解绑"),
    ("account_paid", "个人账户支付"),
    ("premium_received", "保费收入"),
    ("claim_reversed", "结算冲销"),
    ("fund_claim_refunded", "基金退回"),
    ("account_payment_reversed", "账户支付冲销"),
    ("premium_refunded", "保费退回"),
    ("year_closed", "年度结转"),
    ("deceased", "死亡"),
    ("inherited", "依法继承"),
    ("transferred", "转移接续"),
    ("transfer_sent", "转出（在途）"),
    ("transfer_received", "转入"),
    ("fund_event_owed", "应由原统筹区基金记账"),
    ("owed_landed", "他区应记基金事件入账"),
    ("flag_decided", "疑点审核结论"),
    ("monitor_rules_loaded", "监控规则载入"),
];

/// A code as text for people: in Chinese its name with the code after it, which is what a
/// clerk types (`在职 (active)`); in English the code. A code the vocabulary lacks is shown
/// as it is.
pub fn code(vocabulary: Vocabulary, code: &str, lang: Lang) -> String {
    match (lang, vocabulary.iter().find(|(c, _)| *c == code)) {
        (Lang::Zh, Some((_, name))) => format!("{name} ({code})"),
        _ => code.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_grouped_by_thousands_with_the_unit() {
        assert_eq!(money("95230028.79", Lang::Zh), "95,230,028.79 元");
        assert_eq!(money("-1234.50", Lang::En), "-1,234.50 yuan");
        assert_eq!(money("999.00", Lang::Zh), "999.00 元");
        assert_eq!(money("0.00", Lang::Zh), "0.00 元");
        assert_eq!(money("100000", Lang::Zh), "100,000 元");
        assert_eq!(money_fen(-123_456, Lang::Zh), "-1,234.56 元");
        assert_eq!(money_fen(5, Lang::En), "0.05 yuan");
    }

    #[test]
    fn text_that_is_not_an_amount_is_left_as_it_is() {
        assert_eq!(grouped("abc"), "abc");
        assert_eq!(grouped("1.2.3"), "1.2.3");
        assert_eq!(grouped("-"), "-");
        assert_eq!(grouped(""), "");
    }

    #[test]
    fn chinese_characters_take_two_columns() {
        assert_eq!(width("余额"), 4);
        assert_eq!(width("balance"), 7);
        assert_eq!(pad("余额", 6), "余额  ");
    }

    #[test]
    fn codes_show_their_chinese_name_and_the_code() {
        assert_eq!(code(STATUS, "retired", Lang::Zh), "退休 (retired)");
        assert_eq!(code(STATUS, "retired", Lang::En), "retired");
        assert_eq!(code(STATUS, "unknown", Lang::Zh), "unknown");
    }
}

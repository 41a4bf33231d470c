//! One table per kind of answer: each JSON key the answer may hold with its Chinese and English
//! label and the kind of its value, in the order text shows them (who, their state, the
//! figures, then where the answer comes from). A key no table names is still shown, after the
//! others, under its JSON name ([`super::render`]).

use gongji_recon::words::{
    Vocabulary, CHANNEL, CREDIT_SOURCE, EVENT, FUND, INSTITUTION_KIND, PURPOSE, RELATION,
    REVERSAL_KIND, SCHEME, STATE, STATUS,
};

/// How a value is shown.
#[derive(Clone, Copy)]
pub enum Kind {
    /// As it is (text, numbers, days).
    Plain,
    /// An amount: grouped, with its unit.
    Money,
    /// A recorded time (UTC in JSON): shown in the ledger's zone with the offset.
    Time,
    /// A code: its name in Chinese beside it.
    Code(Vocabulary),
    /// Yes or no.
    Flag,
    /// An object shown under its label with its own table.
    Object(Table),
    /// An object whose fields are shown in the place of its key (a settlement in a history line).
    Flatten(Table),
    /// A list of objects, one line each.
    List(Table),
}

/// A JSON key with its labels and the kind of its value.
pub struct Label {
    pub key: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
    pub kind: Kind,
}

pub type Table = &'static [Label];

const fn l(key: &'static str, zh: &'static str, en: &'static str, kind: Kind) -> Label {
    Label { key, zh, en, kind }
}

use Kind::{Code, Flag, Flatten, List, Money, Object, Plain, Time};

/// The as-of question an answer was asked with (added by `--recorded-before`).
const AS_OF_RECORDED_BEFORE: Label = l("recorded_before", "记录截止时间", "recorded before", Time);
const AS_OF_TIME_ZONE: Label = l("time_zone", "时区", "time zone", Plain);

const MEMBER: Label = l("member", "参保人", "member", Plain);
const REGION: Label = l("region", "统筹地区", "region", Plain);
const REGION_SINCE: Label = l("region_since", "本地区参保起始日", "in region since", Plain);
const STATE_OF_ACCOUNT: Label = l("state", "参保状态", "account state", Code(STATE));
const STATUS_OF_MEMBER: Label = l("status", "人员类别", "status", Code(STATUS));
const SCHEME_OF_MEMBER: Label = l("scheme", "参保方式", "scheme", Code(SCHEME));
const DECEASED_ON: Label = l("deceased_on", "死亡日期", "deceased on", Plain);
const BALANCE: Label = l("balance", "个人账户余额", "account balance", Money);
const POLICY: Label = l("policy", "政策版本", "policy version", Plain);
const YEAR: Label = l("year", "医保年度", "insurance year", Plain);
const AMOUNT: Label = l("amount", "金额", "amount", Money);
const POSITION: Label = l("position", "日志位置", "log position", Plain);
const RECORDED_AT: Label = l("recorded_at", "记录时间", "recorded at", Time);
const EVENT_ID: Label = l("event_id", "事件编号", "event id", Plain);
const SPECIAL_PAID: Label = l("special_paid", "特殊门诊支付", "special payments", Money);
const ORDINARY_PAID: Label = l(
    "ordinary_paid",
    "普通门诊统筹支付",
    "ordinary pooling paid",
    Money,
);
const POOLED_PAID: Label = l("pooled_paid", "统筹基金支付", "pooled fund paid", Money);
const LARGE_AMOUNT_PAID: Label = l(
    "large_amount_paid",
    "大额医疗支付",
    "large-amount fund paid",
    Money,
);
const DEDUCTIBLE_APPLIED: Label = l(
    "deductible_applied",
    "计入起付线",
    "deductible applied",
    Money,
);
const ACCOUNT_PAID: Label = l(
    "account_paid",
    "个人账户支付",
    "paid from the account",
    Money,
);
const CASH_PAID: Label = l("cash_paid", "现金支付", "paid in cash", Money);
const REIMBURSED: Label = l(
    "reimbursed_to_member",
    "退还参保人",
    "reimbursed to the member",
    Money,
);
const YEARLY_LIMIT: Label = l("yearly_limit", "年度共济限额", "yearly limit", Money);
const DATE: Label = l("date", "日期", "date", Plain);

/// A family binding in `account`.
const FAMILY: Table = &[
    l("relative", "共济亲属", "relative", Plain),
    l("relation", "关系", "relation", Code(RELATION)),
    l("since", "绑定日期", "bound since", Plain),
    l("until", "解绑日期", "unbound on", Plain),
    YEARLY_LIMIT,
];

/// `account`.
pub const ACCOUNT: Table = &[
    MEMBER,
    STATE_OF_ACCOUNT,
    REGION,
    REGION_SINCE,
    SCHEME_OF_MEMBER,
    l("enrolled_on", "参保日期", "enrolled on", Plain),
    l("retired_on", "退休日期", "retired on", Plain),
    DECEASED_ON,
    l("closed_on", "注销日期", "closed on", Plain),
    BALANCE,
    l("credited_total", "累计划入", "credited in total", Money),
    l("paid_total", "累计支出", "paid out in total", Money),
    l("months_credited", "已划入月数", "months credited", Plain),
    l("family", "家庭共济绑定", "family bindings", List(FAMILY)),
    AS_OF_RECORDED_BEFORE,
    AS_OF_TIME_ZONE,
];

/// One deductible rule's standing in `year`.
const DEDUCTIBLE_STANDING: Table = &[
    l("rule", "规则", "rule", Plain),
    l("group", "起付线分组", "group", Plain),
    l("amount", "起付线", "deductible", Money),
    l("levels", "医院等级", "levels", Plain),
    l("institution_kinds", "机构类别", "institution kinds", Plain),
    l("used", "已累计", "filled", Money),
    l("remaining", "剩余", "left", Money),
];

/// `year`.
pub const YEAR_ANSWER: Table = &[
    MEMBER,
    REGION,
    STATUS_OF_MEMBER,
    YEAR,
    l("deductible", "起付线", "deductible", Money),
    l(
        "deductible_used",
        "起付线已累计",
        "deductible filled",
        Money,
    ),
    l(
        "deductible_remaining",
        "起付线剩余",
        "deductible left",
        Money,
    ),
    l(
        "deductible_cap",
        "起付线年度封顶",
        "yearly deductible cap",
        Money,
    ),
    l(
        "deductibles",
        "各起付线",
        "deductibles",
        List(DEDUCTIBLE_STANDING),
    ),
    l("ordinary_limit", "年度限额", "annual limit", Money),
    ORDINARY_PAID,
    l(
        "ordinary_remaining",
        "年度限额剩余",
        "annual limit left",
        Money,
    ),
    SPECIAL_PAID,
    POOLED_PAID,
    LARGE_AMOUNT_PAID,
    l("claims", "结算笔数", "claims settled", Plain),
    POLICY,
    AS_OF_RECORDED_BEFORE,
    AS_OF_TIME_ZONE,
];

/// A movement of a balance recorded after a death or a transfer.
const MOVEMENT: Table = &[
    l("event", "事件", "event", Code(EVENT)),
    l("id", "单号", "id", Plain),
    DATE,
    AMOUNT,
    POSITION,
    RECORDED_AT,
    EVENT_ID,
];

/// An heir's payout.
const PAYOUT: Table = &[
    l("heir", "继承人", "heir", Plain),
    l("share", "份额", "share", Plain),
    AMOUNT,
];

const INHERITED_BALANCE: Label = l("inherited_balance", "继承金额", "inherited balance", Money);
const PAYOUTS: Label = l("payouts", "继承支付", "payouts", List(PAYOUT));

/// `inheritance`.
pub const INHERITANCE: Table = &[
    MEMBER,
    STATE_OF_ACCOUNT,
    DECEASED_ON,
    l(
        "balance_on_death",
        "死亡时余额",
        "balance on the day of death",
        Money,
    ),
    l(
        "after_death",
        "死亡后补记的变动",
        "movements after death",
        List(MOVEMENT),
    ),
    l("inherited_on", "继承日期", "inherited on", Plain),
    INHERITED_BALANCE,
    PAYOUTS,
    BALANCE,
    AS_OF_RECORDED_BEFORE,
    AS_OF_TIME_ZONE,
];

/// One transfer in `transfers`.
const TRANSFER: Table = &[
    l("date", "转移日期", "date", Plain),
    l("from_region", "转出地区", "from region", Plain),
    l("to_region", "转入地区", "to region", Plain),
    l("balance", "转移金额", "balance moved", Money),
    l(
        "balance_as_of_date",
        "当日余额（按发生日期）",
        "balance as of that date",
        Money,
    ),
    l(
        "later_recorded",
        "之后补记的变动",
        "recorded later",
        List(MOVEMENT),
    ),
    l("note", "说明", "note", Plain),
    POSITION,
    RECORDED_AT,
    EVENT_ID,
];

/// `transfers`.
pub const TRANSFERS: Table = &[
    MEMBER,
    REGION,
    REGION_SINCE,
    l("transfers", "转移接续", "transfers", List(TRANSFER)),
    AS_OF_RECORDED_BEFORE,
    AS_OF_TIME_ZONE,
];

/// A fund's figures.
pub const FIGURES: Table = &[
    l("inflow", "收入", "inflow", Money),
    l("outflow", "支出", "outflow", Money),
    l("balance", "结余", "balance", Money),
];

/// `fund`.
pub const FUND_ANSWER: Table = &[
    REGION,
    l("pooled", "统筹基金", "pooled fund", Object(FIGURES)),
    l(
        "large_amount",
        "大额医疗互助基金",
        "large-amount fund",
        Object(FIGURES),
    ),
    l(
        "accounts",
        "个人账户合计",
        "personal accounts",
        Object(FIGURES),
    ),
    AS_OF_RECORDED_BEFORE,
    AS_OF_TIME_ZONE,
];

/// A claim's settlement, in history lines and `explain`.
pub const SETTLEMENT: Table = &[
    l("claim", "结算单号", "claim", Plain),
    MEMBER,
    REGION,
    STATUS_OF_MEMBER,
    l("date", "就诊日期", "date", Plain),
    YEAR,
    l("institution", "定点机构", "institution", Plain),
    l("level", "医院等级", "level", Plain),
    l(
        "institution_kind",
        "机构类别",
        "institution kind",
        Code(INSTITUTION_KIND),
    ),
    l("channel", "结算渠道", "channel", Code(CHANNEL)),
    l("use_account", "使用个人账户", "from the account", Plain),
    l("visit", "就诊号", "visit", Plain),
    l("eligible", "政策范围内费用", "eligible", Money),
    l("uncovered", "政策范围外费用", "uncovered", Money),
    SPECIAL_PAID,
    DEDUCTIBLE_APPLIED,
    l(
        "ordinary_computed",
        "按比例计算",
        "ordinary computed",
        Money,
    ),
    ORDINARY_PAID,
    l(
        "ordinary_pooled",
        "其中统筹基金",
        "of it, pooled fund",
        Money,
    ),
    POOLED_PAID,
    LARGE_AMOUNT_PAID,
    ACCOUNT_PAID,
    CASH_PAID,
    REIMBURSED,
    POLICY,
    l("deductible_group", "起付线分组", "deductible group", Plain),
    l(
        "ordinary_cost_before",
        "此前年度普通门诊费用",
        "ordinary cost before",
        Money,
    ),
    l("stint_since", "本地区参保起始日", "in region since", Plain),
];

/// The fields of the events in the log (history lines, `explain`'s events).
pub const EVENT_FIELDS: Table = &[
    MEMBER,
    l("holder", "账户持有人", "holder", Plain),
    l("relative", "共济亲属", "relative", Plain),
    l("relation", "关系", "relation", Code(RELATION)),
    l("beneficiary", "使用人", "beneficiary", Plain),
    l("claim", "结算单号", "claim", Plain),
    l("payment", "缴费单号", "payment", Plain),
    l("fund", "基金", "fund", Code(FUND)),
    REGION,
    l("from_region", "转出地区", "from region", Plain),
    l("to_region", "转入地区", "to region", Plain),
    l("born", "出生日期", "born", Plain),
    STATUS_OF_MEMBER,
    SCHEME_OF_MEMBER,
    l("purpose", "用途", "purpose", Code(PURPOSE)),
    // An account payment's; a claim's is in its settlement.
    l("institution", "定点机构", "institution", Plain),
    l("month", "月份", "month", Plain),
    YEAR,
    l("reason", "原因", "reason", Plain),
    l("opening_balance", "期初余额", "opening balance", Money),
    l("base", "缴费基数", "contribution base", Money),
    l("lump_sum_base", "趸缴基数", "lump-sum base", Money),
    l("lump_sum_until", "趸缴截止月份", "lump sum until", Plain),
    l("paid_by", "资金来源", "paid by", Code(CREDIT_SOURCE)),
    AMOUNT,
    l("closing_balance", "结转余额", "closing balance", Money),
    // In an event, the balance the event moved (inherited, transferred), not today's.
    l("balance", "账户余额", "balance", Money),
    YEARLY_LIMIT,
    PAYOUTS,
    l("settlement", "结算", "settlement", Flatten(SETTLEMENT)),
    POLICY,
];

/// What `apply` says of a line it applied (every command's result in one table).
pub const RESULT: Table = &[
    MEMBER,
    l("holder", "账户持有人", "holder", Plain),
    l("relative", "共济亲属", "relative", Plain),
    l("beneficiary", "使用人", "beneficiary", Plain),
    l("claim", "结算单号", "claim", Plain),
    l("id", "单号", "id", Plain),
    l("kind", "冲销类别", "reversed", Code(REVERSAL_KIND)),
    REGION,
    l("from_region", "转出地区", "from region", Plain),
    l("to_region", "转入地区", "to region", Plain),
    l("version", "政策版本", "policy version", Plain),
    l("effective", "生效日期", "effective", Plain),
    l("month", "月份", "month", Plain),
    YEAR,
    l("year_from", "年度起", "year from", Plain),
    l("year_to", "年度止", "year to", Plain),
    l("retired_on", "退休日期", "retired on", Plain),
    DECEASED_ON,
    l("members_credited", "划入人数", "members credited", Plain),
    l("credited", "划入个人账户", "credited", Money),
    l("pooled", "划入统筹基金", "to the pooled fund", Money),
    l(
        "lump_sum_credited",
        "趸缴划入",
        "credited from lump sums",
        Money,
    ),
    l("fund_paid", "基金支付", "funds paid", Money),
    SPECIAL_PAID,
    DEDUCTIBLE_APPLIED,
    ORDINARY_PAID,
    POOLED_PAID,
    LARGE_AMOUNT_PAID,
    ACCOUNT_PAID,
    CASH_PAID,
    REIMBURSED,
    AMOUNT,
    l(
        "account_refunded",
        "退回个人账户",
        "refunded to the account",
        Money,
    ),
    l(
        "pooled_refunded",
        "退回统筹基金",
        "refunded to the pooled fund",
        Money,
    ),
    l(
        "large_amount_refunded",
        "退回大额医疗",
        "refunded to the large-amount fund",
        Money,
    ),
    l("accounts_closed", "结转账户数", "accounts closed", Plain),
    l("closing_total", "结转总额", "closing total", Money),
    INHERITED_BALANCE,
    PAYOUTS,
    BALANCE,
    POLICY,
    l(
        "policy_loaded",
        "转入地区已有政策",
        "policy loaded in the new region",
        Flag,
    ),
];

/// `audit export`'s manifest.
pub const MANIFEST: Table = &[
    l("records", "记录数", "records", Plain),
    l("policies", "政策版本数", "policy versions", Plain),
    l("complete", "完整档案", "complete", Flag),
    l("chain", "哈希链", "chain", Plain),
    l("first_hash", "首条哈希", "first hash", Plain),
    l("last_hash", "末条哈希", "last hash", Plain),
];

/// `policy list`: one line per version.
pub const POLICY_VERSION: Table = &[
    REGION,
    l("version", "政策版本", "version", Plain),
    l("effective", "生效日期", "effective", Plain),
    l("year_start", "医保年度起始", "year starts", Plain),
];

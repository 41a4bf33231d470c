//! The steps of a claim's settlement as `explain` tells them in text: the same arithmetic as the
//! ledger's `steps` (which `--json` keeps, in English with plain amounts), told from the
//! settlement's figures in the language chosen, amounts with their unit and grouping.

use gongji_domain::Money;
use gongji_recon::words::{self, code, Lang, CHANNEL, INSTITUTION_KIND, STATUS};
use serde_json::Value;

use super::{plain, Style};

/// An amount of the settlement, if it is one.
fn amount(value: &Value) -> Option<Money> {
    value.as_str()?.parse().ok()
}

/// The steps told from `settlement` (with its `basis`); `None` when a figure is missing or not
/// an amount, and the ledger's own steps are shown instead.
pub fn steps(settlement: &Value, style: &Style) -> Option<Vec<String>> {
    let fen = |value: &Value| amount(value).map(Money::fen);
    let remainder = fen(&settlement["eligible"])?.checked_sub(fen(&settlement["special_paid"])?)?;
    let own = remainder.checked_sub(fen(&settlement["ordinary_paid"])?)?;
    let mut steps = pooling(settlement, words::money_fen(remainder, style.lang), style)?;
    steps.extend(payments(
        settlement,
        words::money_fen(own, style.lang),
        style,
    )?);
    Some(steps)
}

/// From the policy to the ordinary payment computed: `remainder` is what enters pooling.
fn pooling(s: &Value, remainder: String, style: &Style) -> Option<Vec<String>> {
    let b = &s["basis"];
    let money = |value: &Value| style.money(value);
    let status = code(STATUS, s["status"].as_str()?, style.lang);
    let channel = code(CHANNEL, s["channel"].as_str()?, style.lang);
    let kind = s["institution_kind"]
        .as_str()
        .map(|k| code(INSTITUTION_KIND, k, style.lang));
    let capped = capped_by(s).map(|cap| style.money(&cap));
    let (policy, level, group) = (
        plain(&s["policy"]),
        plain(&s["level"]),
        plain(&s["deductible_group"]),
    );
    let ratios = ratios(&b["bands"], style)?;
    let zh = style.lang == Lang::Zh;
    Some(vec![
        if zh {
            let kind = kind.map_or(String::new(), |k| format!("（{k}）"));
            format!(
                "按政策 {policy}：人员类别 {status}，医院等级 {level}{kind}，结算渠道 {channel}"
            )
        } else {
            let kind = kind.map_or(String::new(), |k| format!(" ({k})"));
            format!("policy {policy} for {status} member, level {level}{kind} via {channel}")
        },
        if zh {
            format!(
                "政策范围内费用 {} − 特殊支付 {} = {remainder}，进入普通门诊统筹",
                money(&s["eligible"]),
                money(&s["special_paid"])
            )
        } else {
            format!(
                "eligible {} - special payments {} = {remainder} enters ordinary pooling",
                money(&s["eligible"]),
                money(&s["special_paid"])
            )
        },
        match (zh, capped) {
            (true, None) => format!(
                "起付线 {}（分组 {group} 此前已累计 {}）：本次计入 {}",
                money(&b["deductible"]),
                money(&b["deductible_used_before"]),
                money(&s["deductible_applied"])
            ),
            (true, Some(cap)) => format!(
                "起付线 {}（分组 {group} 此前已累计 {}），受年度起付线封顶 {cap} 限制：本次计入 {}",
                money(&b["deductible"]),
                money(&b["deductible_used_before"]),
                money(&s["deductible_applied"])
            ),
            (false, None) => format!(
                "deductible {} ({} of group {group} filled before): {} applied",
                money(&b["deductible"]),
                money(&b["deductible_used_before"]),
                money(&s["deductible_applied"])
            ),
            (false, Some(cap)) => format!(
                "deductible {} ({} of group {group} filled before), capped by the yearly \
                 deductible cap {cap} across groups: {} applied",
                money(&b["deductible"]),
                money(&b["deductible_used_before"]),
                money(&s["deductible_applied"])
            ),
        },
        if zh {
            format!("（{remainder} − {}）× 支付比例 {ratios}（本年此前普通门诊费用 {}）= {}，四舍五入到分", money(&s["deductible_applied"]), money(&s["ordinary_cost_before"]), money(&s["ordinary_computed"]))
        } else {
            format!("({remainder} - {}) at ratio {ratios} (the year's ordinary cost before was {}) = {}, rounded half up to the fen", money(&s["deductible_applied"]), money(&s["ordinary_cost_before"]), money(&s["ordinary_computed"]))
        },
    ])
}

/// The yearly deductible cap, when it rather than the group's own deductible limited what the
/// settlement `s` applied (as the ledger's `deductible_capped` says).
fn capped_by(s: &Value) -> Option<Value> {
    let b = &s["basis"];
    let cap = b["deductible_cap"].clone();
    let fen = |value: &Value| amount(value).map(Money::fen);
    fen(&cap)?;
    let group_left = (fen(&b["deductible"])? - fen(&b["deductible_used_before"])?).max(0);
    let remainder = fen(&s["eligible"])? - fen(&s["special_paid"])?;
    (fen(&s["deductible_applied"])? < group_left.min(remainder)).then_some(cap)
}

/// From the limit to who paid the member's own share (`own`).
fn payments(s: &Value, own: String, style: &Style) -> Option<Vec<String>> {
    let b = &s["basis"];
    let money = |value: &Value| style.money(value);
    let zh = style.lang == Lang::Zh;
    let mut steps = Vec::new();
    let (paid, before) = (
        money(&s["ordinary_paid"]),
        money(&b["ordinary_paid_before"]),
    );
    steps.push(match (&b["ordinary_limit"], zh) {
        (Value::Null, true) => format!("无年度限额：普通门诊统筹支付 {paid}"),
        (Value::Null, false) => format!("no annual ordinary limit: ordinary payment {paid}"),
        (limit, true) => format!(
            "年度限额 {}，此前已用 {before}：普通门诊统筹支付 {paid}",
            money(limit)
        ),
        (limit, false) => format!(
            "annual ordinary limit {}, {before} used before: ordinary payment {paid}",
            money(limit)
        ),
    });
    let (pooled, large) = (money(&s["ordinary_pooled"]), money(&s["large_amount_paid"]));
    let (before, special) = (money(&b["pooled_paid_before"]), money(&s["special_paid"]));
    steps.push(match (&b["annual_max"], zh) {
        (Value::Null, true) => format!("无年度最高支付限额：统筹基金支付 {pooled}"),
        (Value::Null, false) => format!("no annual maximum: the pooled fund pays {pooled}"),
        (max, true) => format!("统筹基金年度最高支付限额 {}，此前已支付 {before}，本次特殊支付 {special}：统筹基金支付其中 {pooled}，大额医疗互助基金支付 {large}", money(max)),
        (max, false) => format!("pooled fund's annual maximum {}, {before} paid before and {special} special now: pooled fund pays {pooled} of it, the large-amount fund {large}", money(max)),
    });
    let (uncovered, account, cash) = (
        money(&s["uncovered"]),
        money(&s["account_paid"]),
        money(&s["cash_paid"]),
    );
    let (balance, available, date) = (
        money(&b["balance_before"]),
        money(&b["available_before"]),
        plain(&s["date"]),
    );
    steps.push(if zh {
        format!("个人负担 {own}（另加政策范围外费用 {uncovered}）：个人账户支付 {account}（余额 {balance}，{date} 可用 {available}），现金支付 {cash}")
    } else {
        format!("own share {own} (+ uncovered {uncovered}): {account} from the account (balance {balance}, {available} available on {date}), {cash} in cash")
    });
    if amount(&s["reimbursed_to_member"])? > Money::ZERO {
        let reimbursed = money(&s["reimbursed_to_member"]);
        steps.push(if zh {
            format!("手工报销：基金退还参保人 {reimbursed}")
        } else {
            format!("manual claim: the fund pays {reimbursed} back to the member")
        });
    }
    Some(steps)
}

/// The ratio bands: `0.5`, or `0.5 up to a yearly cost of 1,000.00 yuan, then 0.6`.
fn ratios(bands: &Value, style: &Style) -> Option<String> {
    let said: Vec<String> = bands
        .as_array()?
        .iter()
        .map(|band| {
            let ratio = plain(&band["ratio"]);
            match (band.get("up_to"), style.lang) {
                (Some(end), Lang::Zh) if !end.is_null() => {
                    format!("{ratio}（年度累计费用至 {}）", style.money(end))
                }
                (Some(end), Lang::En) if !end.is_null() => {
                    format!("{ratio} up to a yearly cost of {}", style.money(end))
                }
                _ => ratio,
            }
        })
        .collect();
    Some(said.join(style.pick("，其后 ", ", then ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manual_claim_with_bands_and_no_limits() -> Value {
        json!({
            "policy": "P/1", "status": "retired", "level": 2, "channel": "manual",
            "deductible_group": "outpatient", "date": "2024-05-01",
            "eligible": "2000.00", "special_paid": "0.00", "uncovered": "0.00",
            "deductible_applied": "0.00", "ordinary_cost_before": "0.00",
            "ordinary_computed": "1300.00", "ordinary_paid": "1300.00",
            "ordinary_pooled": "1300.00", "large_amount_paid": "0.00",
            "account_paid": "0.00", "cash_paid": "700.00", "reimbursed_to_member": "1300.00",
            "basis": {
                "deductible": "0.00", "deductible_used_before": "0.00",
                "bands": [{"ratio": "0.6", "up_to": "1000.00"}, {"ratio": "0.7"}],
                "ordinary_limit": null, "ordinary_paid_before": "0.00",
                "annual_max": null, "pooled_paid_before": "0.00",
                "balance_before": "0.00", "available_before": "0.00"
            }
        })
    }

    #[test]
    fn bands_missing_limits_and_a_manual_claim_are_told_in_both_languages() {
        let settlement = manual_claim_with_bands_and_no_limits();
        let zh = Style {
            lang: Lang::Zh,
            zone: None,
        };
        let said = steps(&settlement, &zh).unwrap();
        assert!(
            said[3].contains("支付比例 0.6（年度累计费用至 1,000.00 元），其后 0.7"),
            "{said:?}"
        );
        assert_eq!(said[4], "无年度限额：普通门诊统筹支付 1,300.00 元");
        assert_eq!(said[5], "无年度最高支付限额：统筹基金支付 1,300.00 元");
        assert_eq!(said[7], "手工报销：基金退还参保人 1,300.00 元");
        let en = Style {
            lang: Lang::En,
            zone: None,
        };
        let said = steps(&settlement, &en).unwrap();
        assert!(
            said[3].contains("at ratio 0.6 up to a yearly cost of 1,000.00 yuan, then 0.7"),
            "{said:?}"
        );
        assert_eq!(
            said[7],
            "manual claim: the fund pays 1,300.00 yuan back to the member"
        );
    }

    #[test]
    fn a_settlement_missing_a_figure_is_not_told() {
        let mut settlement = manual_claim_with_bands_and_no_limits();
        settlement["eligible"] = Value::from("many");
        assert!(steps(
            &settlement,
            &Style {
                lang: Lang::Zh,
                zone: None
            }
        )
        .is_none());
    }
}

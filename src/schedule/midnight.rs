//! R20's "00:00 in the tenant's IANA time zone", made exact across DST gaps and overlaps.
//!
//! A tenant's day starts at the first instant whose local date is that day: 00:00 when it
//! exists, the end of the gap when the clocks jump over midnight, and the earlier 00:00 when
//! midnight happens twice. Everything here is pure, so the scheduler can be tested without a clock.

use chrono::{DateTime, Days, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The next instant strictly after `after` at which a new local date starts in `zone`.
///
/// One per local date: where 00:00 happens twice only the earlier counts, and where it does not
/// happen the day starts when the gap ends (e.g. 01:00 local).
pub fn next_midnight(zone: Tz, after: DateTime<Utc>) -> DateTime<Utc> {
    let today = after.with_timezone(&zone).date_naive();
    today
        .iter_days()
        .map(|date| start_of_day(zone, date))
        .find(|start| *start > after)
        .expect("the local calendar runs on past any instant")
}

/// The latest midnight at or before `now` that has not run yet, if any.
///
/// `last_fired` is the midnight the tenant last ran for (or any instant at or after it, such as
/// when that run started). Midnights missed while the service was down collapse into one: only
/// the latest is returned, so a service back after three days runs once, not three times. A
/// tenant that never ran is due at once; a caller that wants a new tenant to wait for its first
/// midnight passes the time it was added.
pub fn due_midnight(
    zone: Tz,
    last_fired: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let today = now.with_timezone(&zone).date_naive();
    let latest = (0..)
        .map_while(|back| today.checked_sub_days(Days::new(back)))
        .map(|date| start_of_day(zone, date))
        .find(|start| *start <= now)?;
    match last_fired {
        Some(fired) if fired >= latest => None,
        _ => Some(latest),
    }
}

/// The first instant of `date` in `zone`.
pub fn start_of_day(zone: Tz, date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_time(chrono::NaiveTime::MIN);
    match zone.from_local_datetime(&midnight) {
        LocalResult::Single(start) => start.with_timezone(&Utc),
        LocalResult::Ambiguous(earlier, _) => earlier.with_timezone(&Utc),
        LocalResult::None => end_of_gap(zone, midnight),
    }
}

/// The first instant whose local time is at or after `local`, which falls in a gap.
///
/// Offsets in the tz database stay within ±16 hours (even the old local mean times), so the
/// transition lies within 16 hours of `local` read as UTC; transitions fall on whole seconds, so a
/// binary search over seconds finds it exactly.
fn end_of_gap(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let reached = |seconds: i64| {
        DateTime::from_timestamp(seconds, 0)
            .is_some_and(|instant| instant.with_timezone(&zone).naive_local() >= local)
    };
    let pivot = local.and_utc().timestamp();
    // `reached` is false at `lo` and true at `hi`.
    let (mut lo, mut hi) = (pivot - 16 * 3600, pivot + 16 * 3600);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if reached(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0).expect("within a day of a representable local time")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveTime, Timelike};
    use chrono_tz::{America, Asia, Europe, Pacific};

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn local(zone: Tz, instant: DateTime<Utc>) -> String {
        instant
            .with_timezone(&zone)
            .format("%Y-%m-%d %H:%M:%S %:z")
            .to_string()
    }

    #[test]
    fn r20_sao_paulo_runs_at_one_in_the_morning_on_the_day_midnight_did_not_exist() {
        let zone = America::Sao_Paulo;
        let midnight = NaiveDate::from_ymd_opt(2018, 11, 4)
            .unwrap()
            .and_time(NaiveTime::MIN);
        assert_eq!(zone.from_local_datetime(&midnight), LocalResult::None);

        let next = next_midnight(zone, utc("2018-11-03T12:00:00Z"));

        assert_eq!(next, utc("2018-11-04T03:00:00Z"));
        assert_eq!(local(zone, next), "2018-11-04 01:00:00 -02:00");
        assert_eq!(
            next_midnight(zone, next),
            utc("2018-11-05T02:00:00Z"),
            "the next day is an ordinary 00:00 -02:00"
        );
    }

    #[test]
    fn r20_havana_skips_to_one_in_the_morning_when_spring_forward_swallows_midnight() {
        let zone = America::Havana;
        let midnight = NaiveDate::from_ymd_opt(2024, 3, 10)
            .unwrap()
            .and_time(NaiveTime::MIN);
        assert_eq!(zone.from_local_datetime(&midnight), LocalResult::None);

        let next = next_midnight(zone, utc("2024-03-09T12:00:00Z"));

        assert_eq!(next, utc("2024-03-10T05:00:00Z"));
        assert_eq!(local(zone, next), "2024-03-10 01:00:00 -04:00");
    }

    #[test]
    fn r20_havana_runs_once_when_fall_back_repeats_midnight() {
        let zone = America::Havana;
        let midnight = NaiveDate::from_ymd_opt(2024, 11, 3)
            .unwrap()
            .and_time(NaiveTime::MIN);
        assert!(matches!(
            zone.from_local_datetime(&midnight),
            LocalResult::Ambiguous(..)
        ));

        let first = next_midnight(zone, utc("2024-11-02T12:00:00Z"));
        let after_first = next_midnight(zone, first);

        assert_eq!(first, utc("2024-11-03T04:00:00Z"));
        assert_eq!(local(zone, first), "2024-11-03 00:00:00 -04:00");
        assert_eq!(
            after_first,
            utc("2024-11-04T05:00:00Z"),
            "the second 00:00 (05:00 UTC on the 3rd) is not a new day"
        );
        assert_eq!(local(zone, after_first), "2024-11-04 00:00:00 -05:00");
    }

    #[test]
    fn r20_kolkata_midnight_is_half_past_six_in_the_evening_utc() {
        let next = next_midnight(Asia::Kolkata, utc("2026-01-15T12:00:00Z"));

        assert_eq!(next, utc("2026-01-15T18:30:00Z"));
        assert_eq!(local(Asia::Kolkata, next), "2026-01-16 00:00:00 +05:30");
    }

    #[test]
    fn r20_chatham_midnight_follows_its_quarter_hour_offsets_summer_and_winter() {
        let zone = Pacific::Chatham;

        let summer = next_midnight(zone, utc("2026-01-15T00:00:00Z"));
        let winter = next_midnight(zone, utc("2026-07-01T00:00:00Z"));

        assert_eq!(summer, utc("2026-01-15T10:15:00Z"));
        assert_eq!(local(zone, summer), "2026-01-16 00:00:00 +13:45");
        assert_eq!(winter, utc("2026-07-01T11:15:00Z"));
        assert_eq!(local(zone, winter), "2026-07-02 00:00:00 +12:45");
    }

    #[test]
    fn r20_london_midnight_moves_an_hour_across_both_transitions() {
        let zone = Europe::London;
        // 2026: BST starts 29 March 01:00 UTC, ends 25 October 01:00 UTC.
        let expected = [
            ("2026-03-28T12:00:00Z", "2026-03-29T00:00:00Z"),
            ("2026-03-29T00:00:00Z", "2026-03-29T23:00:00Z"),
            ("2026-10-24T12:00:00Z", "2026-10-24T23:00:00Z"),
            ("2026-10-24T23:00:00Z", "2026-10-26T00:00:00Z"),
        ];

        for (after, next) in expected {
            let got = next_midnight(zone, utc(after));
            assert_eq!(got, utc(next), "after {after}");
            assert_eq!(
                got.with_timezone(&zone).time(),
                NaiveTime::MIN,
                "after {after}"
            );
        }
    }

    #[test]
    fn r20_utc_midnight_is_strictly_after_the_given_instant() {
        assert_eq!(
            next_midnight(Tz::UTC, utc("2026-05-01T00:00:00Z")),
            utc("2026-05-02T00:00:00Z")
        );
        assert_eq!(
            next_midnight(Tz::UTC, utc("2026-05-01T23:59:59.999Z")),
            utc("2026-05-02T00:00:00Z")
        );
        assert_eq!(
            next_midnight(Tz::UTC, utc("2026-12-31T13:00:00Z")),
            utc("2027-01-01T00:00:00Z")
        );
    }

    #[test]
    fn r20_four_hundred_days_give_exactly_one_midnight_per_local_date() {
        let cases = [
            (America::Havana, "2024-01-01T12:00:00Z"),
            (America::Sao_Paulo, "2018-01-01T12:00:00Z"),
            (Europe::London, "2026-01-01T12:00:00Z"),
            (Pacific::Chatham, "2026-01-01T12:00:00Z"),
        ];
        for (zone, start) in cases {
            let mut after = utc(start);
            let mut dates = Vec::new();

            for _ in 0..400 {
                let next = next_midnight(zone, after);
                assert!(next > after);
                let local = next.with_timezone(&zone);
                assert!(
                    local.time() == NaiveTime::MIN
                        || zone.from_local_datetime(&local.date_naive().and_time(NaiveTime::MIN))
                            == LocalResult::None,
                    "{zone}: {local} is not midnight although midnight existed"
                );
                assert!(local.hour() <= 1, "{zone}: {local}");
                dates.push(local.date_naive());
                after = next;
            }

            let first = dates[0];
            let expected: Vec<_> = first.iter_days().take(400).collect();
            assert_eq!(dates, expected, "{zone}");
        }
    }

    #[test]
    fn r20_every_zone_gets_one_midnight_per_local_date_from_2020_to_2027() {
        let end = utc("2028-01-01T00:00:00Z");
        for zone in chrono_tz::TZ_VARIANTS {
            let mut after = utc("2020-01-01T12:00:00Z");
            let mut previous: Option<NaiveDate> = None;
            while after < end {
                let next = next_midnight(zone, after);
                let date = next.with_timezone(&zone).date_naive();
                if let Some(previous) = previous {
                    assert_eq!(previous.succ_opt(), Some(date), "{zone} after {after}");
                }
                assert_eq!(start_of_day(zone, date), next, "{zone} {date}");
                previous = Some(date);
                after = next;
            }
        }
    }

    #[test]
    fn r20_a_tenant_that_never_ran_is_due_for_todays_midnight() {
        let due = due_midnight(Europe::London, None, utc("2026-06-10T15:00:00Z"));

        assert_eq!(due, Some(utc("2026-06-09T23:00:00Z")));
    }

    #[test]
    fn r20_a_tenant_that_ran_today_is_not_due_again_until_the_next_midnight() {
        let zone = Europe::London;
        let fired = utc("2026-06-09T23:00:00Z");

        assert_eq!(
            due_midnight(zone, Some(fired), utc("2026-06-09T23:00:00Z")),
            None
        );
        assert_eq!(
            due_midnight(zone, Some(fired), utc("2026-06-10T22:59:59Z")),
            None
        );
        assert_eq!(
            due_midnight(
                zone,
                Some(utc("2026-06-09T23:00:04Z")),
                utc("2026-06-10T15:00:00Z")
            ),
            None,
            "a run that started a few seconds after midnight counts for it"
        );
        assert_eq!(
            due_midnight(zone, Some(fired), utc("2026-06-10T23:00:00Z")),
            Some(utc("2026-06-10T23:00:00Z"))
        );
    }

    #[test]
    fn r20_three_missed_midnights_run_once_for_the_latest() {
        let zone = Asia::Kolkata;
        let fired = utc("2026-02-01T18:30:00Z");
        let back = utc("2026-02-05T09:00:00Z");

        let due = due_midnight(zone, Some(fired), back);

        assert_eq!(due, Some(utc("2026-02-04T18:30:00Z")));
        assert_eq!(
            due_midnight(zone, due, back),
            None,
            "once it has run, the missed ones are not due"
        );
    }

    #[test]
    fn r20_the_day_midnight_did_not_exist_is_due_from_the_end_of_the_gap() {
        let zone = America::Sao_Paulo;
        let fired = utc("2018-11-03T03:00:00Z");

        assert_eq!(
            due_midnight(zone, Some(fired), utc("2018-11-04T02:59:59Z")),
            None
        );
        assert_eq!(
            due_midnight(zone, Some(fired), utc("2018-11-04T03:00:00Z")),
            Some(utc("2018-11-04T03:00:00Z"))
        );
    }

    #[test]
    fn r20_a_repeated_midnight_is_not_due_a_second_time() {
        let zone = America::Havana;
        let first = utc("2024-11-03T04:00:00Z");

        assert_eq!(
            due_midnight(zone, None, utc("2024-11-03T05:30:00Z")),
            Some(first)
        );
        assert_eq!(
            due_midnight(zone, Some(first), utc("2024-11-03T05:30:00Z")),
            None
        );
    }
}

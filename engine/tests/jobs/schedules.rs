//! Schedules: a per-second schedule fires every tick, on time, exactly once, with two
//! instances running; ticks missed while everything was down fire once.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use fluxbase_engine::jobs::{Caller, NewSchedule, SchedulePatch};
use fluxbase_migrations::test_utils::TestDb;
use serde_json::json;

use super::support::{eventually, settings, started};

/// Ticks (Unix microseconds, from the idempotency keys) and creation times of the jobs a
/// schedule submitted.
async fn ticks(client: &tokio_postgres::Client, name: &str) -> Vec<(u128, SystemTime)> {
    client
        .query(
            "SELECT idempotency_key, created_at FROM jobs.jobs WHERE name = $1 ORDER BY 1",
            &[&name],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| {
            let key: String = row.get(0);
            let micros = key.rsplit(':').next().unwrap().parse().unwrap();
            (micros, row.get(1))
        })
        .collect()
}

#[actix::test]
async fn a_per_second_schedule_fires_each_tick_once_on_time_with_two_instances() {
    let db = TestDb::new().await;
    // Two instances; no worker slots, so the submitted jobs stay to be counted.
    let quiet = || fluxbase_engine::jobs::JobsSettings {
        max_concurrent_per_worker: 0,
        ..settings()
    };
    let a = started(&db, quiet()).await;
    let b = started(&db, quiet()).await;
    let admin = Caller::Admin("ops".into());
    let schedule = a
        .create_schedule(
            &admin,
            NewSchedule {
                name: "every-second".into(),
                cron: "* * * * * *".into(),
                kind: "auth.purge_sessions".into(),
                payload: Some(json!({})),
                ..NewSchedule::default()
            },
        )
        .await
        .unwrap();
    assert!(schedule.next_run_at.is_some());
    let client = db.client().await;
    eventually("five ticks", || async {
        (ticks(&client, "every-second").await.len() >= 5).then_some(())
    })
    .await;
    a.update_schedule(
        &admin,
        schedule.id,
        SchedulePatch {
            enabled: Some(false),
            ..SchedulePatch::default()
        },
    )
    .await
    .unwrap();
    // Every fire an instance counted is a job in the table: no tick was claimed twice
    // (a second claim would count a fire whose insert the idempotency key swallowed).
    let fired = eventually("fires and jobs to agree", || async {
        let jobs = ticks(&client, "every-second").await;
        let fires = a.schedule_fires() + b.schedule_fires();
        (fires == jobs.len() as u64).then_some(jobs)
    })
    .await;
    let seconds: Vec<u128> = fired.iter().map(|(t, _)| *t).collect();
    assert!(
        seconds.iter().all(|t| t % 1_000_000 == 0),
        "whole seconds: {seconds:?}"
    );
    let distinct: BTreeSet<_> = seconds.iter().collect();
    assert_eq!(distinct.len(), seconds.len(), "each tick once: {seconds:?}");
    for pair in seconds.windows(2) {
        assert_eq!(pair[1] - pair[0], 1_000_000, "no tick skipped: {seconds:?}");
    }
    // On time: each job exists within a second of its tick.
    for (tick, created) in &fired {
        let created = created.duration_since(UNIX_EPOCH).unwrap().as_micros();
        assert!(created >= *tick, "not early");
        assert!(created - tick < 1_000_000, "late by {} µs", created - tick);
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[actix::test]
async fn ticks_missed_while_down_fire_once() {
    let db = TestDb::new().await;
    let client = db.client().await;
    // Due every minute, last computed an hour ago: 60 ticks were missed.
    client
        .batch_execute(
            "INSERT INTO jobs.schedules (name, cron, kind, next_run_at) \
             VALUES ('minutely', '* * * * *', 'auth.purge_sessions', now() - interval '1 hour')",
        )
        .await
        .unwrap();
    let jobs = started(
        &db,
        fluxbase_engine::jobs::JobsSettings {
            max_concurrent_per_worker: 0,
            ..settings()
        },
    )
    .await;
    eventually("the catch-up fire", || async {
        (jobs.schedule_fires() == 1).then_some(())
    })
    .await;
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM jobs.jobs WHERE name = 'minutely'), \
                    next_run_at > now(), next_run_at <= now() + interval '1 minute', \
                    last_job_id = (SELECT id FROM jobs.jobs WHERE name = 'minutely') \
             FROM jobs.schedules WHERE name = 'minutely'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1, "one job, not sixty");
    assert!(
        row.get::<_, bool>(1) && row.get::<_, bool>(2),
        "next tick is the next minute"
    );
    assert!(row.get::<_, bool>(3));
    // A schedule written by SQL without next_run_at gets one, and does not fire at once.
    client
        .batch_execute(
            "INSERT INTO jobs.schedules (name, cron, kind) \
             VALUES ('hourly', '0 * * * *', 'auth.purge_sessions')",
        )
        .await
        .unwrap();
    eventually("next_run_at filled in", || async {
        let row = client
            .query_one(
                "SELECT next_run_at IS NOT NULL FROM jobs.schedules WHERE name = 'hourly'",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, bool>(0).then_some(())
    })
    .await;
    assert_eq!(jobs.schedule_fires(), 1);
    jobs.shutdown().await;
}

//! The `Prefer` header: every preference, first-wins, strict and lenient handling.

use super::error::RestError;
use super::prefer::{
    CountPreference, Handling, Missing, Preferences, Resolution, ReturnPreference, TxEnd,
    parse_preferences,
};

#[test]
fn every_preference() {
    let prefs = parse_preferences(&[
        "return=representation, count=exact,resolution=merge-duplicates",
        "missing=default,tx=rollback, handling=lenient, timezone=America/Los_Angeles, max-affected=5",
    ])
    .unwrap();
    assert_eq!(
        prefs,
        Preferences {
            return_: Some(ReturnPreference::Representation),
            count: Some(CountPreference::Exact),
            resolution: Some(Resolution::MergeDuplicates),
            missing: Some(Missing::Default),
            tx: Some(TxEnd::Rollback),
            handling: Some(Handling::Lenient),
            timezone: Some("America/Los_Angeles".into()),
            max_affected: Some(5),
            invalid: vec![],
        }
    );
    let values = [
        ("return=minimal", ReturnPreference::Minimal),
        ("return=headers-only", ReturnPreference::HeadersOnly),
    ];
    for (text, value) in values {
        assert_eq!(parse_preferences(&[text]).unwrap().return_, Some(value));
    }
    for (text, value) in [
        ("count=planned", CountPreference::Planned),
        ("count=estimated", CountPreference::Estimated),
    ] {
        assert_eq!(parse_preferences(&[text]).unwrap().count, Some(value));
    }
    let prefs =
        parse_preferences(&["resolution=ignore-duplicates,missing=null,tx=commit"]).unwrap();
    assert_eq!(prefs.resolution, Some(Resolution::IgnoreDuplicates));
    assert_eq!(prefs.missing, Some(Missing::Null));
    assert_eq!(prefs.tx, Some(TxEnd::Commit));
}

#[test]
fn the_first_occurrence_wins() {
    let prefs = parse_preferences(&["tx=commit, tx=rollback"]).unwrap();
    assert_eq!(prefs.tx, Some(TxEnd::Commit));
    let prefs = parse_preferences(&[
        "resolution=ignore-duplicates",
        "resolution=merge-duplicates",
    ])
    .unwrap();
    assert_eq!(prefs.resolution, Some(Resolution::IgnoreDuplicates));
}

#[test]
fn invalid_preferences_are_ignored_unless_strict() {
    let prefs =
        parse_preferences(&["count=exact, foo, bar=baz, max-affected=x, timezone=a;b"]).unwrap();
    assert_eq!(prefs.count, Some(CountPreference::Exact));
    assert_eq!(
        prefs.invalid,
        vec!["foo", "bar=baz", "max-affected=x", "timezone=a;b"]
    );
    assert_eq!(prefs.max_affected, None);

    let err = parse_preferences(&["handling=strict, foo, bar"]).unwrap_err();
    assert_eq!(
        err,
        RestError::InvalidPreferences {
            prefs: vec!["foo".into(), "bar".into()]
        }
    );
    assert_eq!((err.code(), err.status().as_u16()), ("PGRST122", 400));
    assert_eq!(
        err.to_string(),
        "Invalid preferences given with handling=strict"
    );
    assert_eq!(
        err.details().as_deref(),
        Some("Invalid preferences: foo, bar")
    );
    // Strict with only valid preferences is fine.
    assert!(parse_preferences(&["handling=strict,max-affected=10"]).is_ok());
}

#[test]
fn invalid_lists_are_bounded() {
    let many = vec!["x".repeat(500); 100].join(",");
    let err = parse_preferences(&["handling=strict", &many]).unwrap_err();
    let RestError::InvalidPreferences { prefs } = err else {
        panic!()
    };
    assert_eq!(prefs.len(), 8);
    assert!(
        prefs
            .iter()
            .all(|p| p.chars().count() <= super::error::SNIPPET_CHARS + 1)
    );
}

#[test]
fn applied_header() {
    assert_eq!(Preferences::default().applied(), None);
    let prefs = parse_preferences(&["return=representation,count=exact,max-affected=3"]).unwrap();
    assert_eq!(
        prefs.applied().as_deref(),
        Some("return=representation, count=exact")
    );
    let prefs = parse_preferences(&["handling=strict,max-affected=3,missing=default"]).unwrap();
    assert_eq!(
        prefs.applied().as_deref(),
        Some("missing=default, handling=strict, max-affected=3")
    );
}

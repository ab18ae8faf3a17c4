//! Preset and one-liner shape tests: the exact phases each expands to.
use super::*;

fn levels(phases: &[Phase]) -> Vec<(u64, Option<u64>, u64)> {
    phases
        .iter()
        .map(|p| match p.shape {
            PhaseShape::Concurrency {
                vusers,
                ramp_to,
                duration,
                ..
            } => (vusers, ramp_to, duration.as_secs()),
            _ => panic!("presets expand to closed-model phases"),
        })
        .collect()
}

fn defaults(name: &str) -> Vec<(u64, Option<u64>, u64)> {
    levels(&expand(name, &PresetParams::default()).unwrap())
}

#[test]
fn warmup_ramps_1_to_10() {
    assert_eq!(defaults("warmup"), vec![(1, Some(10), 60)]);
}

#[test]
fn step_goes_5_to_50_by_5() {
    let expected: Vec<_> = (1..=10).map(|i| (i * 5, None, 30)).collect();
    assert_eq!(defaults("step"), expected);
}

#[test]
fn exponential_doubles_1_to_64() {
    let expected: Vec<_> = [1, 2, 4, 8, 16, 32, 64]
        .iter()
        .map(|&l| (l, None, 30))
        .collect();
    assert_eq!(defaults("exponential"), expected);
}

#[test]
fn spike_goes_10_100_10() {
    assert_eq!(
        defaults("spike"),
        vec![(10, None, 30), (100, None, 30), (10, None, 30)]
    );
}

#[test]
fn ramp_up_down_5_40_5() {
    assert_eq!(
        defaults("rampUpDown"),
        vec![(5, Some(40), 60), (40, Some(5), 60)]
    );
}

#[test]
fn sustained_holds_20() {
    assert_eq!(defaults("sustained"), vec![(20, None, 300)]);
}

#[test]
fn stress_steps_10_to_200() {
    let expected: Vec<_> = (1..=20).map(|i| (i * 10, None, 30)).collect();
    assert_eq!(defaults("stress"), expected);
}

#[test]
fn parameters_override_and_unaligned_steps_end_at_to() {
    let params = PresetParams {
        from: Some(2),
        to: Some(9),
        by: Some(3),
        every: Some(Duration::from_secs(5)),
        duration: None,
    };
    let got = levels(&expand("step", &params).unwrap());
    assert_eq!(
        got,
        vec![(2, None, 5), (5, None, 5), (8, None, 5), (9, None, 5)]
    );
}

#[test]
fn bad_parameters_are_errors() {
    assert!(
        matches!(expand("stepp", &PresetParams::default()), Err(PresetError::Unknown { hint, .. }) if hint.contains("step"))
    );
    let p = PresetParams {
        by: Some(0),
        ..Default::default()
    };
    assert!(expand("step", &p).is_err());
    let p = PresetParams {
        from: Some(60),
        ..Default::default()
    };
    assert!(matches!(
        expand("step", &p),
        Err(PresetError::FromAboveTo { .. })
    ));
    let p = PresetParams {
        by: Some(1),
        to: Some(1_000_000),
        ..Default::default()
    };
    assert!(matches!(
        expand("step", &p),
        Err(PresetError::TooManyPhases { .. })
    ));
    let p = PresetParams {
        every: Some(Duration::ZERO),
        ..Default::default()
    };
    assert!(expand("stress", &p).is_err());
}

fn ms(phases: &[Phase]) -> Vec<(u64, Option<u64>, u128)> {
    phases
        .iter()
        .map(|p| match p.shape {
            PhaseShape::Concurrency {
                vusers,
                ramp_to,
                duration,
                curve,
                steps,
            } => {
                assert_eq!((curve, steps), (Curve::Linear, None));
                (vusers, ramp_to, duration.as_millis())
            }
            _ => panic!("a closed-model shape"),
        })
        .collect()
}

fn closed(vusers: u64, spawn_rate: Option<f64>, secs: u64) -> Result<Vec<Phase>, ShapeError> {
    shape_phases(&Shape::Closed {
        vusers,
        spawn_rate,
        duration: Duration::from_secs(secs),
    })
}

#[test]
fn vusers_with_a_spawn_rate_ramp_from_0_then_hold_until_the_duration() {
    // Locust's -u 100 -r 10 -t 1m: 10 s to start 100, then 50 s at 100.
    assert_eq!(
        ms(&closed(100, Some(10.0), 60).unwrap()),
        vec![(0, Some(100), 10_000), (100, None, 50_000)]
    );
    // --vusers 4 --spawn-rate 2 --duration 3s
    assert_eq!(
        ms(&closed(4, Some(2.0), 3).unwrap()),
        vec![(0, Some(4), 2_000), (4, None, 1_000)]
    );
    // A fractional ramp: 5 at 2/s takes 2.5 s.
    assert_eq!(
        ms(&closed(5, Some(2.0), 10).unwrap()),
        vec![(0, Some(5), 2_500), (5, None, 7_500)]
    );
}

#[test]
fn a_ramp_that_fills_the_duration_has_no_hold_and_a_longer_one_is_an_error() {
    assert_eq!(
        ms(&closed(10, Some(1.0), 10).unwrap()),
        vec![(0, Some(10), 10_000)]
    );
    let err = closed(100, Some(1.0), 60).unwrap_err();
    assert!(matches!(err, ShapeError::RampTooLong { .. }));
    let text = err.to_string();
    assert!(text.contains("100 vusers at 1/s takes 100.0s"), "{text}");
    assert!(text.contains("--duration 60s"), "{text}");
}

#[test]
fn vusers_without_a_spawn_rate_start_at_once() {
    // LoadTestBot's --bots 10 --duration 60.
    assert_eq!(ms(&closed(10, None, 60).unwrap()), vec![(10, None, 60_000)]);
}

#[test]
fn an_arrival_rate_is_one_open_phase() {
    let phases = shape_phases(&Shape::Open {
        rate: 5.0,
        duration: Duration::from_secs(30),
    })
    .unwrap();
    assert_eq!(phases.len(), 1);
    assert_eq!(
        phases[0].shape,
        PhaseShape::Arrivals {
            duration: Duration::from_secs(30),
            rate_per_sec: 5.0,
            ramp_to_per_sec: None,
            max_vusers: None,
            distribution: crate::plan::Arrivals::Uniform,
        }
    );
}

#[test]
fn nonsense_shapes_are_errors() {
    assert_eq!(closed(0, None, 10).unwrap_err(), ShapeError::NoVusers);
    assert_eq!(closed(3, None, 0).unwrap_err(), ShapeError::ZeroDuration);
    assert!(matches!(
        closed(3, Some(0.0), 10),
        Err(ShapeError::BadRate { .. })
    ));
    assert!(matches!(
        closed(3, Some(f64::NAN), 10),
        Err(ShapeError::BadRate { .. })
    ));
    let open = |rate| {
        shape_phases(&Shape::Open {
            rate,
            duration: Duration::from_secs(1),
        })
    };
    assert!(matches!(
        open(-1.0),
        Err(ShapeError::BadRate {
            flag: "arrival-rate",
            ..
        })
    ));
}

#[test]
fn timed_presets_scale_their_phases_to_the_duration() {
    let lasting = |name, secs| {
        ms(&expand_lasting(
            name,
            &PresetParams::default(),
            Some(Duration::from_secs(secs)),
        )
        .unwrap())
    };
    assert_eq!(lasting("sustained", 60), vec![(20, None, 60_000)]);
    assert_eq!(lasting("warmup", 20), vec![(1, Some(10), 20_000)]);
    assert_eq!(
        lasting("rampUpDown", 60),
        vec![(5, Some(40), 30_000), (40, Some(5), 30_000)]
    );
    // 30 s / 30 s / 30 s in proportion; the last phase takes the rounding remainder.
    assert_eq!(
        lasting("spike", 10),
        vec![(10, None, 3_333), (100, None, 3_333), (10, None, 3_333)]
    );
    let total: Duration = expand_lasting(
        "spike",
        &PresetParams::default(),
        Some(Duration::from_secs(10)),
    )
    .unwrap()
    .iter()
    .map(phase_duration)
    .sum();
    assert_eq!(total, Duration::from_secs(10));
    // Without a total the preset keeps its own lengths.
    assert_eq!(
        ms(&expand_lasting("sustained", &PresetParams::default(), None).unwrap()),
        vec![(20, None, 300_000)]
    );
}

#[test]
fn stepping_presets_take_no_duration() {
    for name in ["step", "exponential", "stress"] {
        assert!(matches!(
            expand_lasting(
                name,
                &PresetParams::default(),
                Some(Duration::from_secs(60))
            ),
            Err(PresetError::NoDuration { .. })
        ));
    }
}

//! The `spot_cam_sim` binary's robot API over TLS gRPC with its generated CA, driven by the
//! same client the node uses: auth (success, failure, lockout), directory, every Spot CAM RPC
//! we use, and rejection of unauthenticated calls.

mod common;

use std::time::Duration;

use common::{PASSWORD, Sim, USERNAME};
use spot_ptz_stream::robot::{
    Credentials, RobotClient, RobotError, SPOT_CAM_SERVICES, StreamParamsUpdate,
};

fn client(sim: &Sim) -> RobotClient {
    RobotClient::new(sim.stream_config().robot).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_directory_and_spot_cam_calls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start(&[
        "--width",
        "320",
        "--height",
        "240",
        "--services-delay-secs",
        "1",
    ]);
    let robot = client(&sim);

    // Before login every Spot CAM call is refused.
    let refused = robot.list_screens().await.unwrap_err();
    assert!(
        matches!(
            refused,
            RobotError::Unauthenticated | RobotError::ServiceNotFound { .. }
        ),
        "{refused}"
    );

    let wrong = robot
        .login(&Credentials::new(USERNAME.into(), "nope".into()))
        .await
        .unwrap_err();
    assert!(matches!(wrong, RobotError::InvalidLogin), "{wrong}");
    let token = robot
        .login(&Credentials::new(USERNAME.into(), PASSWORD.into()))
        .await
        .expect("login");
    let refreshed = robot.refresh_token().await.expect("re-mint");
    assert!(!refreshed.expose().is_empty() && !token.expose().is_empty());

    // The Spot CAM services register late; the client waits for them.
    robot
        .wait_for_services(&SPOT_CAM_SERVICES, Duration::from_millis(200))
        .await
        .expect("services appear");
    let services = robot.list_services().await.unwrap();
    for name in SPOT_CAM_SERVICES {
        assert!(
            services.iter().any(|s| s.name == name),
            "{name} missing from {services:?}"
        );
    }

    let screens = robot.list_screens().await.unwrap();
    assert!(screens.iter().any(|s| s == "mech_full"), "{screens:?}");
    assert_eq!(robot.set_screen("c0").await.unwrap(), "c0");
    assert_eq!(robot.get_screen().await.unwrap(), "c0");
    assert!(matches!(
        robot.set_screen("no_such_screen").await,
        Err(RobotError::InvalidRequest { .. })
    ));
    assert!(!robot.get_visible_cameras().await.unwrap().is_empty());

    let before = robot.get_stream_params().await.unwrap();
    let after = robot
        .set_stream_params(&StreamParamsUpdate {
            target_bitrate_bps: Some(1_500_000),
            ..StreamParamsUpdate::default()
        })
        .await
        .unwrap();
    assert_eq!(after.target_bitrate_bps, Some(1_500_000));
    assert_eq!(
        after.idr_interval_frames, before.idr_interval_frames,
        "unset fields must not change"
    );

    let ptzs = robot.list_ptz().await.unwrap();
    assert!(ptzs.iter().any(|p| p.name == "mech"), "{ptzs:?}");
    let target = robot
        .set_ptz_position("mech", Some(500.0), Some(10.0), Some(2.0))
        .await
        .unwrap();
    assert_eq!(target.pan_deg, Some(360.0), "pan is clamped to the limits");
    let moving = robot.get_ptz_position("mech").await.unwrap();
    assert!(
        moving.pan_deg.unwrap() < 360.0,
        "the PTZ must not jump: {moving:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_wrong_passwords_lock_logins_out() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start(&["--width", "320", "--height", "240"]);
    let robot = client(&sim);
    for attempt in 1..=6 {
        let error = robot
            .login(&Credentials::new(
                USERNAME.into(),
                format!("wrong-{attempt}"),
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(error, RobotError::InvalidLogin),
            "attempt {attempt}: {error}"
        );
    }
    let locked = robot
        .login(&Credentials::new(USERNAME.into(), PASSWORD.into()))
        .await
        .unwrap_err();
    assert!(matches!(locked, RobotError::LockedOut), "{locked}");
}

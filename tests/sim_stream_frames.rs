//! The simulator's WebRTC stream, received by the library's stream task over real TLS gRPC,
//! HTTPS signalling and WebRTC: frames decode, in order, with readable frame numbers.

mod common;

use std::time::Duration;

use common::Sim;
use spot_ptz_stream::shutdown::CancellationToken;
use spot_ptz_stream::sim::frame_tag;
use spot_ptz_stream::stream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_decode_in_order_with_frame_numbers() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start_640x360(&["--fps", "30"]);
    let shutdown = CancellationToken::new();
    let mut config = sim.stream_config();
    // Re-mint often enough to see it happen during the test.
    config.token_refresh_interval = Duration::from_secs(1);
    let (handle, task) = stream::spawn(config, true, shutdown.clone()).expect("spawn");
    let frames = handle.frames();

    let mut numbers = Vec::new();
    let collect = async {
        while numbers.len() < 90 {
            let frame = frames.pop().await.expect("stream ended early");
            assert_eq!((frame.width, frame.height), (640, 360));
            assert_eq!(frame.bgr().len(), 640 * 360 * 3);
            if let Some(n) = frame_tag::read_bgr8(frame.bgr(), 640 * 3, 640, 360) {
                numbers.push(n);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), collect)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no 90 tagged frames in 30 s: status {:?}\nsim log:\n{}",
                handle.status(),
                sim.log()
            )
        });

    assert!(
        numbers.windows(2).all(|w| w[1] > w[0]),
        "frame numbers out of order: {numbers:?}"
    );
    let span = numbers.last().unwrap() - numbers.first().unwrap() + 1;
    let lost = span as usize - numbers.len();
    // The consumer pops as fast as frames come; allow a couple dropped by the queue.
    assert!(
        lost * 100 <= span as usize * 3,
        "lost {lost} of {span}: {numbers:?}"
    );

    assert!(
        sim.log().contains("token re-minted"),
        "the token was never re-minted"
    );
    assert_eq!(
        handle.stats().snapshot().reconnects,
        0,
        "a re-mint must not interrupt the stream"
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("stream task did not end within 2 s after shutdown")
        .expect("stream task panicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_stream_at_once_each_with_its_own_peer_connection() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start(&["--width", "320", "--height", "240", "--fps", "30"]);
    let shutdown = CancellationToken::new();
    let (first, first_task) =
        stream::spawn(sim.stream_config(), true, shutdown.clone()).expect("spawn");
    let (second, second_task) =
        stream::spawn(sim.stream_config(), true, shutdown.clone()).expect("spawn");
    let both = async {
        for handle in [&first, &second] {
            let frames = handle.frames();
            let mut tagged = 0;
            while tagged < 30 {
                let frame = frames.pop().await.expect("stream ended early");
                if frame_tag::read_bgr8(frame.bgr(), 320 * 3, 320, 240).is_some() {
                    tagged += 1;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), both)
        .await
        .unwrap_or_else(|_| panic!("both clients did not get frames; sim log:\n{}", sim.log()));
    assert!(
        sim.log().matches("peer connected; streaming").count() >= 2,
        "{}",
        sim.log()
    );
    shutdown.cancel();
    for task in [first_task, second_task] {
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("ends")
            .expect("no panic");
    }
}

//! The simulator's HTTPS signalling endpoint, through a real HTTPS client: status codes and the
//! offer's shape (sendrecv H.264 packetization-mode 1 + audio, candidates inline).

mod common;

use base64::Engine as _;
use common::{PASSWORD, Sim, USERNAME};
use spot_ptz_stream::camera_link::signalling::{Offer, parse_offer};
use spot_ptz_stream::robot::{Credentials, RobotClient};

fn client(sim: &Sim) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&sim.ca_pem()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap()
}

async fn login_token(sim: &Sim) -> String {
    let robot = RobotClient::new(sim.stream_config().robot).unwrap();
    let token = robot
        .login(&Credentials::new(USERNAME.into(), PASSWORD.into()))
        .await
        .unwrap();
    token.expose().to_string()
}

/// GETs an offer and decodes it with the client's own parser (`signalling::parse_offer`).
async fn fetch_offer(http: &reqwest::Client, sim: &Sim, token: &str) -> Offer {
    let body = http
        .get(url(sim))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap();
    parse_offer(&url(sim), &body).unwrap()
}

fn url(sim: &Sim) -> String {
    format!("https://localhost:{}/h264.sdp", sim.sdp_addr.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_and_offer() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start(&["--width", "320", "--height", "240"]);
    let http = client(&sim);
    let token = login_token(&sim).await;

    let no_token = http.get(url(&sim)).send().await.unwrap();
    assert_eq!(no_token.status(), 401);
    let bad_token = http
        .get(url(&sim))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_token.status(), 401);
    let wrong_path = http
        .get(format!(
            "https://localhost:{}/other.sdp",
            sim.sdp_addr.port()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_path.status(), 404);

    let offer = fetch_offer(&http, &sim, &token).await;
    let sdp = offer.sdp.clone();
    assert!(sdp.starts_with("v=0"), "{sdp}");
    let video = sdp
        .split("m=")
        .find(|m| m.starts_with("video"))
        .expect("video m-line");
    assert!(video.contains("H264/90000"), "{video}");
    assert!(video.contains("packetization-mode=1"), "{video}");
    assert!(video.contains("profile-level-id=42e01f"), "{video}");
    assert!(video.contains("a=sendrecv"), "{video}");
    assert!(
        sdp.split("m=").any(|m| m.starts_with("audio")),
        "no audio m-line: {sdp}"
    );
    assert!(
        sdp.contains("a=candidate:"),
        "candidates must be inline: {sdp}"
    );
    let id = offer.id.clone();

    let post = |body: serde_json::Value| {
        let http = http.clone();
        let token = token.clone();
        let url = url(&sim);
        async move {
            http.post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    assert_eq!(
        post(serde_json::json!({"sdp": b64("v=0")})).await,
        400,
        "missing id"
    );
    assert_eq!(
        post(serde_json::json!({"id": id, "sdp": "%%%not base64"})).await,
        400
    );
    assert_eq!(
        post(serde_json::json!({"id": id, "sdp": b64("hello")})).await,
        400,
        "not SDP"
    );
    assert_eq!(
        post(serde_json::json!({"id": "no-such-id", "sdp": b64("v=0\r\n")})).await,
        404
    );
    let malformed = http
        .post(url(&sim))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let unauthorised = http
        .post(url(&sim))
        .json(&serde_json::json!({"id": id, "sdp": b64("v=0\r\n")}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_id_cannot_be_reused_and_refusal_answers_503() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start(&["--width", "320", "--height", "240"]);
    let http = client(&sim);
    let token = login_token(&sim).await;
    // Answer with a real WebRTC answerer.
    let offer = fetch_offer(&http, &sim, &token).await;
    let offer_sdp = offer.sdp.clone();
    let (rtp_tx, _rtp_rx) = tokio::sync::mpsc::channel(64);
    let config = sim.stream_config().answerer;
    let (session, answer) =
        spot_ptz_stream::camera_link::answerer::AnswererSession::start(&offer_sdp, &config, rtp_tx)
            .await
            .unwrap();
    let body = serde_json::json!({"id": offer.id, "sdp": base64::engine::general_purpose::STANDARD.encode(&answer)});
    let post_answer = || http.post(url(&sim)).bearer_auth(&token).json(&body).send();
    let first = post_answer().await.unwrap();
    assert_eq!(first.status(), 200);
    let again = post_answer().await.unwrap();
    assert_eq!(again.status(), 404, "a used id must not be accepted twice");
    session.close().await;

    let refusing = Sim::start(&[
        "--width",
        "320",
        "--height",
        "240",
        "--refuse-signalling-secs",
        "30",
    ]);
    let token = login_token(&refusing).await;
    let busy = client(&refusing)
        .get(url(&refusing))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(busy.status(), 503);
}

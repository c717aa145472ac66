//! The few SDP rules the answerer applies to the camera's offer before the WebRTC library sees
//! it, with RFC 8866's line rules: lines end at LF (one CR before it is part of the line end),
//! fields are separated by a single space, and a media line is `m=<media> <port> ...`.
//!
//! The offer is untrusted input: nothing here panics, and normalising is idempotent (see the
//! fuzz target `sdp_directions`).

/// The direction attributes of RFC 8866 section 6.7.
const DIRECTIONS: [&str; 4] = ["sendrecv", "sendonly", "recvonly", "inactive"];

/// The lines of an SDP text: split at LF, one trailing CR removed, empty lines skipped.
pub fn lines(sdp: &str) -> impl Iterator<Item = &str> {
    sdp.split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .filter(|line| !line.is_empty())
}

/// The media type and port of an `m=` line (`None` for any other line).
pub fn media_line(line: &str) -> Option<(&str, Option<u16>)> {
    let mut fields = line.strip_prefix("m=")?.split(' ');
    let media = fields.next()?;
    let port = fields.next().and_then(|p| p.parse().ok());
    Some((media, port))
}

/// The direction of an `a=` line, if it is one.
fn direction(line: &str) -> Option<&str> {
    let attribute = line.strip_prefix("a=")?;
    DIRECTIONS.into_iter().find(|d| *d == attribute)
}

/// Adds `a=sendrecv` to audio/video m-sections that carry no direction attribute, and writes
/// every line with CRLF, as RFC 8866 asks.
///
/// RFC 8866 makes `sendrecv` the default, but rtc 0.21 skips m-sections without an explicit
/// direction when it applies a remote offer, which would leave such a section unanswered.
pub fn normalize_offer_directions(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len() + 16);
    let mut needs_direction = false;
    let end_section = |out: &mut String, needs_direction: &mut bool| {
        if std::mem::take(needs_direction) {
            out.push_str("a=sendrecv\r\n");
        }
    };
    for line in lines(sdp) {
        if let Some((media, _)) = media_line(line) {
            end_section(&mut out, &mut needs_direction);
            needs_direction = matches!(media, "audio" | "video");
        } else if direction(line).is_some() {
            needs_direction = false;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    end_section(&mut out, &mut needs_direction);
    out
}

/// Direction attribute and port (0 when missing) of each m-section of `kind`
/// (`"video"`/`"audio"`).
pub fn media_sections(sdp: &str, kind: &str) -> Vec<(u16, Option<String>)> {
    let mut result = Vec::new();
    let mut current: Option<(u16, Option<String>)> = None;
    for line in lines(sdp) {
        if let Some((media, port)) = media_line(line) {
            result.extend(current.take());
            if media == kind {
                current = Some((port.unwrap_or(0), None));
            }
        } else if let Some((_, dir)) = current.as_mut()
            && let Some(d) = direction(line)
        {
            *dir = Some(d.to_owned());
        }
    }
    result.extend(current);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER_NO_DIRECTION: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\na=rtpmap:102 H264/90000\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=recvonly\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n";

    #[test]
    fn missing_direction_becomes_sendrecv_only_for_media_sections() {
        let out = normalize_offer_directions(OFFER_NO_DIRECTION);
        assert_eq!(
            media_sections(&out, "video"),
            vec![(9, Some("sendrecv".to_owned()))]
        );
        // An explicit direction is kept, not duplicated.
        assert_eq!(
            media_sections(&out, "audio"),
            vec![(9, Some("recvonly".to_owned()))]
        );
        assert_eq!(out.matches("a=sendrecv").count(), 1);
        assert!(out.ends_with("\r\n"));
        assert!(!out.contains("\r\n\r\n"));
        // The data-channel section gets no media direction.
        let app = out.split("m=application").nth(1).unwrap_or_default();
        assert!(!app.contains("a=sendrecv"));
    }

    #[test]
    fn normalizing_is_idempotent() {
        let once = normalize_offer_directions(OFFER_NO_DIRECTION);
        assert_eq!(normalize_offer_directions(&once), once);
    }

    #[test]
    fn media_sections_reports_rejected_lines() {
        let sdp = "v=0\nm=video 0 UDP/TLS/RTP/SAVPF 0\na=inactive\nm=video 9 RTP 96\na=recvonly\n";
        assert_eq!(
            media_sections(sdp, "video"),
            vec![
                (0, Some("inactive".to_owned())),
                (9, Some("recvonly".to_owned()))
            ]
        );
        assert!(media_sections(sdp, "audio").is_empty());
    }

    #[test]
    fn media_lines_split_on_the_space_only() {
        // U+0085 is Unicode whitespace but not an SDP field separator.
        let sdp = "v=0\r\nm=\u{85}video 9 RTP 96\r\n";
        assert!(media_sections(sdp, "video").is_empty());
        let out = normalize_offer_directions(sdp);
        assert!(!out.contains("a=sendrecv"), "not a video section: {out:?}");
    }

    #[test]
    fn bare_carriage_returns_normalise_idempotently() {
        for sdp in [
            "v=0\rm=video 9 RTP 96\r",
            "m=video 9 RTP 96\r\r\na=recvonly\r",
            "m=audio 9 RTP 0\n\ra=x\r\n",
        ] {
            let once = normalize_offer_directions(sdp);
            assert_eq!(normalize_offer_directions(&once), once, "{sdp:?}");
        }
    }
}

//! Unit tests of the header and body parsers.
use super::*;

#[test]
fn items_trim_and_skip_empties() {
    let v: Vec<&[u8]> = items(b" a , ,b,", Some(b',')).collect();
    assert_eq!(v, [&b"a"[..], b"b"]);
    let v: Vec<&[u8]> = items(b"  whole value ", None).collect();
    assert_eq!(v, [&b"whole value"[..]]);
    assert_eq!(items(b"   ", None).count(), 0);
}

#[test]
fn decimals() {
    assert_eq!(parse_decimal(b"1614265330"), Some(1_614_265_330));
    assert_eq!(parse_decimal(b" 42 "), Some(42));
    for bad in [
        &b""[..],
        b"-1",
        b"12a",
        b"1 2",
        b"9999999999999999999",
        b"+5",
    ] {
        assert_eq!(
            parse_decimal(bad),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn decoding_rejects_garbage_and_oversize() {
    let mut buf = [0u8; MAX_SIG];
    assert_eq!(Encoding::Hex.decode(b"abcd", &mut buf), Some(2));
    assert_eq!(buf[..2], [0xab, 0xcd]);
    assert_eq!(Encoding::Hex.decode(b"09af", &mut buf), Some(2));
    assert_eq!(buf[..2], [0x09, 0xaf]);
    assert_eq!(
        Encoding::Hex.decode(b"ABCD", &mut buf),
        None,
        "case is part of it"
    );
    assert_eq!(Encoding::Hex.decode(b"ag", &mut buf), None);
    assert_eq!(Encoding::HexUpper.decode(b"ABCD", &mut buf), Some(2));
    assert_eq!(buf[..2], [0xab, 0xcd]);
    assert_eq!(Encoding::HexUpper.decode(b"abcd", &mut buf), None);
    assert_eq!(Encoding::HexUpper.decode(b"AG", &mut buf), None);
    assert_eq!(Encoding::Hex.decode(b"abc", &mut buf), None);
    assert_eq!(Encoding::Hex.decode(b"zz", &mut buf), None);
    assert_eq!(Encoding::Hex.decode(&[b'a'; 200], &mut buf), None);
    assert_eq!(Encoding::Base64.decode(b"AAEC", &mut buf), Some(3));
    assert_eq!(Encoding::Base64.decode(b"AAE=", &mut buf), Some(2));
    assert_eq!(
        Encoding::Base64.decode(b"AAE", &mut buf),
        None,
        "padding is required"
    );
    assert_eq!(
        Encoding::Base64.decode(b"AAF=", &mut buf),
        None,
        "non-zero spare bits"
    );
    assert_eq!(Encoding::Base64.decode(b"!!!!", &mut buf), None);
    assert_eq!(Encoding::Base64.decode(&[b'A'; 400], &mut buf), None);
    assert_eq!(Encoding::Base64.decode(b"", &mut buf), Some(0));
}

#[test]
fn base64_decoder_agrees_with_the_base64_crate() {
    let mut rng = fastrand::Rng::with_seed(7);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
    let mut buf = [0u8; MAX_SIG];
    let mut reference = [0u8; 80];
    // Canonical encodings of every length round-trip.
    for len in 0..=MAX_SIG {
        let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        let text = BASE64.encode(&bytes);
        assert_eq!(
            decode_base64(text.as_bytes(), &mut buf),
            Some(len),
            "{text}"
        );
        assert_eq!(buf[..len], bytes[..]);
    }
    // Random and mutated strings: accepted exactly when the strict engine accepts them,
    // with the same bytes.
    for round in 0..200_000 {
        let text: Vec<u8> = if round % 2 == 0 {
            let len = rng.usize(0..24);
            (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect()
        } else {
            let bytes: Vec<u8> = (0..rng.usize(0..70)).map(|_| rng.u8(..)).collect();
            let mut text = BASE64.encode(&bytes).into_bytes();
            if !text.is_empty() {
                let i = rng.usize(..text.len());
                text[i] = if rng.bool() {
                    alphabet[rng.usize(..alphabet.len())]
                } else {
                    rng.u8(..)
                };
            }
            text
        };
        let ours = decode_base64(&text, &mut buf);
        let theirs = BASE64
            .decode_slice(&text, &mut reference)
            .ok()
            .filter(|&n| n <= MAX_SIG);
        assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(&text));
        if let Some(n) = ours {
            assert_eq!(buf[..n], reference[..n]);
        }
    }
}

#[test]
fn encoding_matches_the_reference_crates() {
    let mut rng = fastrand::Rng::with_seed(11);
    let mut text = Text::EMPTY;
    for len in 0..=MAX_MAC {
        for _ in 0..50 {
            let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            Encoding::Hex.encode_into(&bytes, &mut text);
            assert_eq!(text.as_bytes(), hex::encode(&bytes).as_bytes());
            Encoding::HexUpper.encode_into(&bytes, &mut text);
            assert_eq!(text.as_bytes(), hex::encode_upper(&bytes).as_bytes());
            Encoding::Base64.encode_into(&bytes, &mut text);
            assert_eq!(text.as_bytes(), BASE64.encode(&bytes).as_bytes());
            // What is written decodes back to the same bytes.
            let mut back = [0u8; MAX_SIG];
            for enc in [Encoding::Hex, Encoding::HexUpper, Encoding::Base64] {
                enc.encode_into(&bytes, &mut text);
                assert_eq!(enc.decode(text.as_bytes(), &mut back), Some(len));
                assert_eq!(back[..len], bytes[..]);
            }
        }
    }
}

#[test]
fn json_paths() {
    let body = br#"{"a":1,"id":"evt_1","nested":{"x":[1,{"id":"no"}],"id":"inner"},"n":7}"#;
    assert_eq!(json_field(body, &["id"]).as_deref(), Some("evt_1"));
    assert_eq!(
        json_field(body, &["nested", "id"]).as_deref(),
        Some("inner")
    );
    assert_eq!(json_field(body, &["n"]).as_deref(), Some("7"));
    assert_eq!(json_field(body, &["nested"]), None);
    assert_eq!(json_field(body, &["missing"]), None);
    assert_eq!(
        json_field(br#"{"i\u0064":"escaped"}"#, &["id"]).as_deref(),
        Some("escaped")
    );
    assert_eq!(json_field(b"token=abc&x=1", &["id"]), None);
    assert_eq!(json_field(b"{\"id\":", &["id"]), None);
    assert_eq!(json_field(b"[{\"id\":\"x\"}]", &["id"]), None);
    // Several paths in one pass, sharing prefixes; the first occurrence wins.
    let body = br#"{"s":{"t":"1","k":"tok"},"e":{"event":"opened","id":9},"s":{"t":"2"}}"#;
    let mut out = [None, None, None, None, None];
    json_fields(
        body,
        &[&["s", "t"], &["s", "k"], &["e", "event"], &["e", "id"], &[]],
        &mut out,
    );
    assert_eq!(
        out,
        [
            Some("1".into()),
            Some("tok".into()),
            Some("opened".into()),
            Some("9".into()),
            None
        ]
    );
    // Reading stops once every field is found: what follows is not read.
    let mut out = [None];
    json_fields(br#"{"id":"x","#, &[&["id"]], &mut out);
    assert_eq!(out, [Some("x".into())]);
    // Invalid JSON before every field was found writes nothing.
    let mut out = [None, None];
    json_fields(br#"{"id":"x","#, &[&["id"], &["type"]], &mut out);
    assert_eq!(out, [None, None]);
}

//! Arbitrary `Accept-Encoding` lines through the coding choice (`content_coding::choose`).
//! It never panics, and what it answers is sound:
//!
//! - only a coding on offer, and never one the header refuses by name (`gzip;q=0`);
//! - the choice does not depend on how the header is split into lines;
//! - offering a coding that is not chosen never changes the choice when it is offered
//!   last (ties go to the configuration's order, so only a later coding can lose them);
//! - no header at all is identity.
//!
//! The input is the header's lines, separated by LF.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portico::content_coding::{choose, Coding};

const ALL: [Coding; 3] = [Coding::Br, Coding::Gzip, Coding::Zstd];

fuzz_target!(|data: &[u8]| {
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    for offered in [&ALL[..], &ALL[..2], &ALL[1..], &[Coding::Gzip][..], &[][..]] {
        let chosen = choose(lines.iter().copied(), offered);
        if let Some(c) = chosen {
            assert!(offered.contains(&c), "{c:?} is not on offer");
            assert!(!refused_by_name(&lines, c), "{c:?} was refused by name");
        }
        // one line with the items joined: the same answer
        let joined = lines.join(&b","[..]);
        assert_eq!(choose(std::iter::once(&joined[..]), offered), chosen, "split into lines");
        // a coding offered last that is not chosen alone changes nothing
        for &extra in ALL.iter().filter(|c| !offered.contains(c)) {
            let mut more = offered.to_vec();
            more.push(extra);
            let with = choose(lines.iter().copied(), &more);
            if choose(lines.iter().copied(), &[extra]).is_none() {
                assert_eq!(with, chosen, "offering {extra:?} (not acceptable) changed the choice");
            }
        }
    }
    assert_eq!(choose(std::iter::empty(), &ALL), None);
});

/// The header names `c` with q=0 (and nowhere with a higher q).
fn refused_by_name(lines: &[&[u8]], c: Coding) -> bool {
    let mut best: Option<bool> = None;
    for line in lines {
        for item in line.split(|&b| b == b',') {
            let mut parts = item.split(|&b| b == b';');
            let token = parts.next().unwrap_or_default().trim_ascii();
            let same = token.eq_ignore_ascii_case(c.token().as_bytes())
                || (c == Coding::Gzip && token.eq_ignore_ascii_case(b"x-gzip"));
            if !same {
                continue;
            }
            let zero = parts.any(|p| {
                let p = p.trim_ascii();
                matches!(p, b"q=0" | b"q=0." | b"q=0.0" | b"q=0.00" | b"q=0.000" | b"Q=0")
            });
            best = Some(best.unwrap_or(true) && zero);
        }
    }
    best.unwrap_or(false)
}

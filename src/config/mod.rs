//! The toolkit every module reads its part of the configuration with: typed keys of a
//! TOML table with unknown-key checks ([`section`]) and problems reported with file, line
//! and what to write instead ([`diag`]). It knows no module's keys; `config_file`
//! assembles the whole file from each module's part.

pub mod diag;
pub mod section;

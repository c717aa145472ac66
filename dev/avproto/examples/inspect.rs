//! Prints the NAL structure of an Annex-B file, one line per access unit.
use avproto::annexb::{self, ParamSets};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: inspect FILE.h264")?;
    let data = std::fs::read(path)?;
    let mut ps = ParamSets::default();
    for (i, au) in annexb::split_access_units(&data).iter().enumerate() {
        let mut desc = Vec::new();
        for nal in annexb::nal_units(au) {
            ps.observe(nal);
            let t = annexb::nal_unit_type(nal);
            match t {
                6 => desc.push(format!("SEI{:?}", annexb::sei_payload_types(nal))),
                1 | 5 => {
                    let s = ps.parse_slice(nal);
                    desc.push(match s {
                        Some(s) => format!(
                            "{}(fn={},ref={},mb={},st={})",
                            if t == 5 { "IDR" } else { "P" },
                            s.frame_num,
                            s.nal_ref_idc,
                            s.first_mb,
                            s.slice_type
                        ),
                        None => format!("slice{t}(?)"),
                    });
                }
                7 => desc.push(format!("SPS{:?}", annexb::parse_sps(nal))),
                _ => desc.push(format!("nal{t}")),
            }
        }
        println!("{i:3} {:6}B {}", au.len(), desc.join(" "));
    }
    Ok(())
}

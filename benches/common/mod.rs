//! The benches' shared input: a real x264 + AAC capture made by ffmpeg (1080p25,
//! ~6 Mbit/s, 20 s), generated once into `target/bench-media/`.

use std::path::PathBuf;
use std::process::Command;

/// `bench_1080p_6m_20s.{ext}` in ffmpeg's `format` (`flv`, `mpegts`), made once; the
/// same file for every bench (and `scripts/bench_ts_demux.sh`).
pub fn bench_1080p(format: &str, ext: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-media");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("bench_1080p_6m_20s.{ext}"));
    if !path.is_file() {
        // Unique per process: benches may make the same file at once.
        let tmp = dir.join(format!(".bench_1080p_6m_20s.{}.{ext}", std::process::id()));
        let st = Command::new("ffmpeg")
            .args(["-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=1920x1080:rate=25:duration=20")
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000:duration=20",
            ])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-profile:v",
                "high",
                "-bf",
                "3",
            ])
            .args([
                "-g", "50", "-b:v", "6000k", "-maxrate", "6000k", "-bufsize", "12000k",
            ])
            .args(["-c:a", "aac", "-b:a", "128k", "-f", format])
            .arg(&tmp)
            .status()
            .expect("ffmpeg is needed to make the bench input (scripts/test.sh installs it)");
        assert!(st.success());
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

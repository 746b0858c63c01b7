//! The composite job: one MP4 (H.264 + AAC) of a room, its video tracks in a
//! grid and its audio tracks mixed, made by ffmpeg (Debian `ffmpeg`) from
//! the track files once the recording has ended.
//!
//! Each track starts at its offset in the recording: video is padded with
//! black before and after, audio delayed, so everything stays where it
//! happened. [`ffmpeg_args`] is a plain function of its inputs, so the
//! layout is tested without running ffmpeg.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// The composite's file name.
pub const FILE: &str = "composite.mp4";
/// Its MIME type.
pub const CONTENT_TYPE: &str = "video/mp4";
/// The canvas.
pub const WIDTH: u32 = 1280;
/// The canvas.
pub const HEIGHT: u32 = 720;
/// Frames per second of the output.
pub const FPS: u32 = 30;

/// One track file, as the job takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// The file.
    pub path: PathBuf,
    /// Video (a grid cell) or audio (mixed).
    pub video: bool,
    /// Where it starts in the recording.
    pub offset_ms: u64,
    /// How long it lasts.
    pub duration_ms: u64,
}

/// Why the composite could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CompositeError {
    /// ffmpeg could not be started.
    #[error("cannot run ffmpeg (install Debian's `ffmpeg` package): {0}")]
    Spawn(std::io::Error),
    /// ffmpeg failed.
    #[error("ffmpeg failed ({status}): {stderr}")]
    Failed {
        /// Its exit status.
        status: String,
        /// The end of what it said.
        stderr: String,
    },
    /// There was nothing to mix.
    #[error("no track was recorded, so there is nothing to composite")]
    Empty,
}

/// Columns and rows of a grid for `n` cells: as square as it gets, wider than tall.
pub fn grid(n: usize) -> (u32, u32) {
    let n = n.max(1) as u32;
    let cols = (f64::from(n)).sqrt().ceil() as u32;
    let rows = n.div_ceil(cols);
    (cols, rows)
}

fn secs(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// The ffmpeg filter graph and arguments that make `output`, `total_ms` long,
/// from `inputs`; with no picture at all unless `with_video` (audio-only recordings).
pub fn ffmpeg_args(
    inputs: &[Input],
    output: &Path,
    total_ms: u64,
    with_video: bool,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-nostdin", "-v", "error", "-y"]
        .iter()
        .map(OsString::from)
        .collect();
    for input in inputs {
        args.push("-i".into());
        args.push(input.path.clone().into_os_string());
    }
    let videos: Vec<(usize, &Input)> = inputs
        .iter()
        .enumerate()
        .filter(|(_, i)| i.video && with_video)
        .collect();
    let audios: Vec<(usize, &Input)> = inputs
        .iter()
        .enumerate()
        .filter(|(_, i)| !i.video)
        .collect();
    let mut graph: Vec<String> = Vec::new();
    let (cols, rows) = grid(videos.len());
    // Even cell sizes, as 4:2:0 video needs.
    let (w, h) = ((WIDTH / cols) & !1, (HEIGHT / rows) & !1);
    for (cell, (i, v)) in videos.iter().enumerate() {
        let after = total_ms.saturating_sub(v.offset_ms + v.duration_ms);
        graph.push(format!(
            "[{i}:v]fps={FPS},scale={w}:{h}:force_original_aspect_ratio=decrease,\
             pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,format=yuv420p,\
             tpad=start_duration={}:stop_duration={}:color=black[v{cell}]",
            secs(v.offset_ms),
            secs(after)
        ));
    }
    match videos.len() {
        _ if !with_video => {}
        0 => graph.push(format!(
            "color=c=black:s={WIDTH}x{HEIGHT}:r={FPS}:d={}[vout]",
            secs(total_ms)
        )),
        1 => graph.push(format!(
            "[v0]pad={WIDTH}:{HEIGHT}:(ow-iw)/2:(oh-ih)/2:color=black[vout]"
        )),
        n => {
            let layout: Vec<String> = (0..n as u32)
                .map(|c| format!("{}_{}", (c % cols) * w, (c / cols) * h))
                .collect();
            let labels: String = (0..n).map(|c| format!("[v{c}]")).collect();
            graph.push(format!(
                "{labels}xstack=inputs={n}:layout={}:fill=black,\
                 pad={WIDTH}:{HEIGHT}:(ow-iw)/2:(oh-ih)/2:color=black[vout]",
                layout.join("|")
            ));
        }
    }
    for (k, (i, a)) in audios.iter().enumerate() {
        graph.push(format!(
            "[{i}:a]aresample=48000,aformat=channel_layouts=stereo,adelay=delays={}:all=1[a{k}]",
            a.offset_ms
        ));
    }
    match audios.len() {
        0 => graph.push(format!(
            "anullsrc=r=48000:cl=stereo,atrim=duration={}[aout]",
            secs(total_ms)
        )),
        1 => graph.push("[a0]anull[aout]".into()),
        n => {
            let labels: String = (0..n).map(|k| format!("[a{k}]")).collect();
            graph.push(format!(
                "{labels}amix=inputs={n}:duration=longest:normalize=0[aout]"
            ));
        }
    }
    args.push("-filter_complex".into());
    args.push(graph.join(";").into());
    if with_video {
        for a in [
            "-map", "[vout]", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt",
            "yuv420p",
        ] {
            args.push(a.into());
        }
    }
    for a in [
        "-map",
        "[aout]",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-movflags",
        "+faststart",
        "-t",
    ] {
        args.push(a.into());
    }
    args.push(secs(total_ms).into());
    for a in ["-progress", "pipe:1", "-nostats"] {
        args.push(a.into());
    }
    args.push(output.as_os_str().to_owned());
    args
}

/// Makes the composite at `output` from `inputs`, `total_ms` long (see
/// [`ffmpeg_args`]), calling `progress` with the fraction done as ffmpeg
/// reports it. Returns its size.
pub async fn run(
    inputs: &[Input],
    output: &Path,
    total_ms: u64,
    with_video: bool,
    mut progress: impl FnMut(f64),
) -> Result<u64, CompositeError> {
    if inputs.is_empty() {
        return Err(CompositeError::Empty);
    }
    let mut child = tokio::process::Command::new("ffmpeg")
        .args(ffmpeg_args(inputs, output, total_ms, with_video))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(CompositeError::Spawn)?;
    let mut stderr = child.stderr.take();
    let err_task = tokio::spawn(async move {
        let mut text = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_string(&mut text).await;
        }
        text
    });
    if let Some(out) = child.stdout.take() {
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(us) = line
                .strip_prefix("out_time_us=")
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                progress((us as f64 / 1000.0 / total_ms.max(1) as f64).min(1.0));
            }
        }
    }
    let status = child.wait().await.map_err(CompositeError::Spawn)?;
    let stderr = err_task.await.unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(CompositeError::Failed {
            status: status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join(" / "),
        });
    }
    progress(1.0);
    let size = tokio::fs::metadata(output)
        .await
        .map_err(CompositeError::Spawn)?
        .len();
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(video: bool, offset_ms: u64, duration_ms: u64) -> Input {
        Input {
            path: PathBuf::from(if video { "v.webm" } else { "a.webm" }),
            video,
            offset_ms,
            duration_ms,
        }
    }

    fn graph(inputs: &[Input], total: u64) -> String {
        let args = ffmpeg_args(inputs, Path::new("out.mp4"), total, true);
        let i = args.iter().position(|a| a == "-filter_complex").unwrap();
        args[i + 1].to_string_lossy().into_owned()
    }

    #[test]
    fn grids_are_as_square_as_they_get() {
        assert_eq!(grid(1), (1, 1));
        assert_eq!(grid(2), (2, 1));
        assert_eq!(grid(3), (2, 2));
        assert_eq!(grid(4), (2, 2));
        assert_eq!(grid(5), (3, 2));
        assert_eq!(grid(9), (3, 3));
        assert_eq!(grid(10), (4, 3));
    }

    #[test]
    fn tracks_keep_their_place_in_time() {
        let g = graph(
            &[
                input(true, 0, 6000),
                input(true, 1500, 3000),
                input(false, 250, 5000),
            ],
            6000,
        );
        // The second video is padded 1.5 s before and 1.5 s after; the audio delayed 250 ms.
        assert!(
            g.contains("tpad=start_duration=1.500:stop_duration=1.500"),
            "{g}"
        );
        assert!(
            g.contains("tpad=start_duration=0.000:stop_duration=0.000"),
            "{g}"
        );
        assert!(g.contains("adelay=delays=250:all=1"), "{g}");
        // Two videos side by side in 640x720 cells.
        assert!(g.contains("scale=640:720"), "{g}");
        assert!(g.contains("xstack=inputs=2:layout=0_0|640_0"), "{g}");
        assert!(g.contains("[a0]anull[aout]"), "{g}");
    }

    #[test]
    fn audio_alone_gets_a_black_picture_and_video_alone_silence() {
        let g = graph(&[input(false, 0, 1000), input(false, 0, 1000)], 1000);
        assert!(
            g.contains("color=c=black:s=1280x720:r=30:d=1.000[vout]"),
            "{g}"
        );
        assert!(g.contains("amix=inputs=2"), "{g}");
        let g = graph(&[input(true, 0, 1000)], 1000);
        assert!(g.contains("anullsrc"), "{g}");
        assert!(g.contains("[v0]pad=1280:720"), "{g}");
    }

    #[test]
    fn the_output_is_h264_and_aac_for_the_whole_length() {
        let args: Vec<String> =
            ffmpeg_args(&[input(true, 0, 2000)], Path::new("o.mp4"), 2000, true)
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
        let joined = args.join(" ");
        assert!(joined.contains("-c:v libx264"), "{joined}");
        assert!(joined.contains("-c:a aac"), "{joined}");
        assert!(joined.contains("-t 2.000"), "{joined}");
        assert_eq!(args.last().map(String::as_str), Some("o.mp4"));
    }

    #[test]
    fn audio_only_recordings_have_no_picture() {
        let args = ffmpeg_args(
            &[input(false, 0, 1000), input(true, 0, 1000)],
            Path::new("o.mp4"),
            1000,
            false,
        );
        let joined: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = joined.join(" ");
        assert!(
            !joined.contains("[vout]") && !joined.contains("libx264"),
            "{joined}"
        );
        assert!(joined.contains("[0:a]"), "{joined}");
    }

    #[tokio::test]
    async fn nothing_to_mix_is_an_error() {
        let err = run(&[], Path::new("/nonexistent/o.mp4"), 1000, true, |_| {}).await;
        assert!(matches!(err, Err(CompositeError::Empty)));
    }
}

//! Live-to-VOD: a VOD playlist and MPD of a stream's recorded segments, with its ad
//! breaks removed, joined or replaced.

use super::http::{Request, Response};
use super::router::text;
use super::{Origin, SegmentStore};

/// The live-to-VOD HLS playlist: `/live/{stream}/vod.m3u8`.
pub const VOD_PLAYLIST: &str = "vod.m3u8";
/// The live-to-VOD DASH MPD: `/live/{stream}/vod.mpd`.
pub const VOD_MPD: &str = "vod.mpd";

impl<S: SegmentStore> Origin<S> {
    pub(super) fn handle_l2v(
        &self,
        _name: &str,
        _file: &str,
        _req: &Request,
        _now: i64,
        head: bool,
    ) -> Response {
        text(404, "no recording\n", head)
    }
}

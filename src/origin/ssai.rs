//! Server-side ad insertion in the origin: per-viewer-session playlists in which the
//! content segments of an ad break are replaced by creatives' segments.

use super::http::{Request, Response};
use super::router::text;
use super::{Origin, SegmentStore};

/// The origin's ad-insertion state: the host's decider, the creatives and the viewer
/// sessions' plans.
#[derive(Debug, Default)]
pub(crate) struct SsaiState {}

impl<S: SegmentStore> Origin<S> {
    /// Removed once implemented.
    pub fn set_ad_decider(&mut self) {}

    pub(super) fn handle_ssai(
        &mut self,
        _name: &str,
        _session: &str,
        _file: &str,
        _req: &Request,
        _now: i64,
    ) -> Response {
        text(404, "no ad insertion\n", false)
    }

    pub(super) fn handle_ad(&mut self, _creative: &str, _file: &str, _req: &Request) -> Response {
        text(404, "no such creative\n", false)
    }
}

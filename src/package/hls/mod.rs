//! HLS playlists (RFC 8216bis): media playlists and the multivariant playlist.

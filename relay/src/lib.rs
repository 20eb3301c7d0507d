//! The wire relay: an axum server holding sealed blobs in slots, with capabilities, directory and discovery. (Filled by the relay work.)

//! Framing codecs with a hard frame cap, transforms, message encoding and matchers.
//!
//! Pure: works on byte buffers only, opens no sockets and knows nothing about plans.

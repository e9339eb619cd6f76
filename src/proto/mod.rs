//! The sans-IO server core (RFC 8415 §16, §18.3). It never touches a socket, the clock or a
//! thread: request bytes, receive metadata and the current time go in; a reply written into the
//! caller's buffer, or a counted drop reason, comes out.

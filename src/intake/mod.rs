//! The intake service: stores a verified delivery durably before answering 2xx. (In progress.)

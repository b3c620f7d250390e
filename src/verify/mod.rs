//! The verify layer: limits the body, checks the signature, and passes the request on with its verified identity. (In progress.)

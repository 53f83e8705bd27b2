"""The ledger's gRPC servicers, one module per proto service, and the protobuf
conversion they share (convert.py). A servicer checks credentials, converts the
request, calls a use case and converts the answer; it holds no SQL and no rules."""

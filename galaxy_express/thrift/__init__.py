"""The Thrift edge: the IDL, one handler mixin per domain, error translation, the processor factory.

Handlers parse structs into the same commands the HTTP views use, call the
service and build structs; ``gen/`` is generated from the IDL (``make thrift``).
"""

"""The SweeperService servicer (sweeper_service.py) and its protobuf conversion (convert.py)."""

"""The fixtures every test directory shares (a cloned database, a bucket, the system as processes).

They are defined in libs/testing/rag_testing/pytest_plugin.py; this is where pytest is told so.
"""

pytest_plugins = ["rag_testing.pytest_plugin"]

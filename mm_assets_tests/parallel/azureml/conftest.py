"""azure-ai-ml's schemas use marshmallow APIs that marshmallow 4 deprecates: import-time noise, not ours."""


def pytest_configure(config):
    for category in ("ChangedInMarshmallow4Warning", "RemovedInMarshmallow4Warning"):
        config.addinivalue_line("filterwarnings", f"ignore::marshmallow.warnings.{category}")

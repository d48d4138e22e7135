from tests.s3 import local_storage, moto_s3, s3_outage, s3_storage

__all__ = ["local_storage", "moto_s3", "s3_outage", "s3_storage"]

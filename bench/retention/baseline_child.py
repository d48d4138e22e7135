"""The baseline in a process of its own: a bare boto3 loop calling DeleteObjects on the given keys in
batches of 1,000 (the keys already in memory, no database). ``python -m bench.retention.baseline_child
ENDPOINT BUCKET KEYS_FILE``; prints the loop's wall time and peak RSS as JSON."""

from __future__ import annotations

import json
import resource
import sys
import time

import boto3


def main(endpoint: str, bucket: str, keys_file: str) -> None:
    with open(keys_file) as fh:
        keys = fh.read().split()
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    for i in range(0, len(keys), 1000):
        response = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]],
                                                                 "Quiet": True})
        assert not response.get("Errors"), response["Errors"][:3]
    elapsed = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    with open("/proc/self/status") as status:
        hwm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"deleted": len(keys), "baseline_s": elapsed, "vm_hwm_kib": hwm_kib, "cpu_s": cpu_s}))


if __name__ == "__main__":
    main(*sys.argv[1:4])

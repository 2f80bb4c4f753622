"""A real Open311 client against a real citypin: the `georeport` package from PyPI (a
maintained GeoReport v2 wrapper that reads both XML and JSON) drives a citypin serving the
Los Angeles sample city on its own database.

`georeport` cannot POST, so the one request it then reads back is posted with `requests`,
the HTTP library `georeport` itself uses, as the spec's form.

Run by scripts/open311-client-test.sh with DATABASE_URL naming an empty database and
the citypin binary as the argument. Prints `N passed, M failed` and exits non-zero on failure.
"""

import os
import socket
import subprocess
import sys
import time
import unittest

import requests
from georeport import GeoReport

ROOT = None
API_KEY = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GeoReportClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        form = {
            "api_key": API_KEY,
            "service_code": "pothole",
            "lat": "34.0522",
            "long": "-118.2437",
            "address_string": "200 N Spring St, Los Angeles",
            "description": "Deep pothole in the right lane",
            "attribute[DEPTH]": "deep",
        }
        res = requests.post(f"{ROOT}/requests.json", data=form, timeout=30)
        res.raise_for_status()
        cls.posted = res.json()[0]["service_request_id"]

    def client(self, fmt):
        return GeoReport(ROOT, jurisdiction="lacity.org", output_format=fmt)

    def test_service_list_in_both_formats(self):
        for fmt in ("json", "xml"):
            services = self.client(fmt).get_service_list()
            codes = {s["service_code"] for s in services}
            self.assertIn("pothole", codes, fmt)
            self.assertIn("bulky-items", codes, fmt)
            pothole = next(s for s in services if s["service_code"] == "pothole")
            self.assertEqual(str(pothole["metadata"]).lower(), "true", fmt)
            self.assertEqual(pothole["type"], "realtime", fmt)

    def test_service_definition_in_both_formats(self):
        for fmt in ("json", "xml"):
            definition = self.client(fmt).get_service_definition("pothole")
            attributes = definition["attributes"]
            if fmt == "xml":
                attributes = attributes["attribute"]
            codes = [a["code"] for a in attributes]
            self.assertEqual(codes[0], "DEPTH", fmt)

    def test_requests_of_the_sample_city_in_both_formats(self):
        for fmt in ("json", "xml"):
            client = self.client(fmt)
            found = client.get_service_requests(service_code="bulky-items")
            self.assertGreater(len(found), 10, fmt)
            self.assertLessEqual(len(found), 1000, fmt)
            for r in found:
                self.assertEqual(r["service_code"], "bulky-items")
                self.assertRegex(r["requested_datetime"], r"(Z|[+-]\d\d:\d\d)$")
            closed = client.get_service_requests(status="closed")
            self.assertGreater(len(closed), 10, fmt)
            self.assertTrue(all(r["status"] == "closed" for r in closed), fmt)

    def test_one_request_by_its_reference_in_both_formats(self):
        for fmt in ("json", "xml"):
            r = self.client(fmt).get_service_request(self.posted)
            self.assertEqual(r["service_request_id"], self.posted, fmt)
            self.assertEqual(r["service_code"], "pothole", fmt)
            self.assertEqual(r["status"], "open", fmt)
            self.assertAlmostEqual(float(r["lat"]), 34.0522, places=6)

    def test_a_list_by_ids_finds_the_posted_request(self):
        for fmt in ("json", "xml"):
            found = self.client(fmt).get_service_requests(service_request_id=self.posted)
            if isinstance(found, dict):  # xmltodict gives a lone element as a dict
                found = [found]
            self.assertEqual([r["service_request_id"] for r in found], [self.posted], fmt)

    def test_an_unknown_service_is_an_http_error(self):
        for fmt in ("json", "xml"):
            with self.assertRaises(requests.HTTPError) as caught:
                self.client(fmt).get_service_definition("unicorn-sighting")
            self.assertEqual(caught.exception.response.status_code, 404)


def main():
    global ROOT, API_KEY
    binary = sys.argv[1]
    port = free_port()
    env = dict(os.environ, CITYPIN_LISTEN=f"127.0.0.1:{port}", RUST_LOG="warn")
    API_KEY = subprocess.run(
        [binary, "token", "create", "--role", "open311-client", "--name", "georeport client test"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout.strip()
    server = subprocess.Popen([binary, "serve"], env=env)
    ROOT = f"http://127.0.0.1:{port}/open311/v2"
    try:
        # A bounded wait for a separate process to load the sample city and bind.
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                print("citypin exited early", file=sys.stderr)
                return 1
            try:
                if requests.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).ok:
                    break
            except requests.RequestException:  # bound but still loading
                pass
            if time.monotonic() > deadline:
                print("citypin did not become ready", file=sys.stderr)
                return 1
            time.sleep(0.2)
        result = unittest.TextTestRunner(verbosity=2).run(
            unittest.defaultTestLoader.loadTestsFromTestCase(GeoReportClient)
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    failed = len(result.failures) + len(result.errors)
    print(f"open311 client: {result.testsRun - failed} passed, {failed} failed")
    return 0 if failed == 0 and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())

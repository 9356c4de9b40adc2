"""The README's first integration, both ways, run with its own commands: the curl
calls against Odoo's HTTP server, and the receiver the Out configuration sends to."""

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import textwrap
import time
import unittest

from odoo import Command
from odoo.tests import tagged

from .common import README, BjApiHttpCase, BjOutboundCase, doc_section

IN_STEPS = "In: contacts created and changed with curl"
OUT_STEPS = "Out: a change seen arriving"
# The address the README's commands use; the tests put theirs in its place.
README_ODOO = "http://127.0.0.1:8069"
README_RECEIVER_PORT = "9000"


def sh_blocks(title):
    """The ``sh`` code blocks of the README's steps headed ``title``, as typed."""
    return [textwrap.dedent(block)
            for block in re.findall(r"```sh\n(.*?)```", doc_section(README, title), re.DOTALL)]


def config_lines(env):
    """Step 4 of either way: ``ID`` → ``id`` (Record Identifier), ``Name``, ``Email``."""
    fields = env["ir.model.fields"]
    return [Command.create({"field_id": fields._get("res.partner", name).id,
                            "external_key": name, "is_identifier": name == "id"})
            for name in ("id", "name", "email")]


@tagged("post_install", "-at_install")
@unittest.skipUnless(shutil.which("curl") and shutil.which("bash"), "needs curl and bash")
class TestFirstIntegrationIn(BjApiHttpCase):
    def curl(self, setup, block):
        """The JSON that ``block`` prints, run after ``setup`` as the README says."""
        printed = subprocess.run(["bash", "-e", "-c", setup + block], check=True, timeout=60,
                                 capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
        return json.loads(printed.stdout)

    def test_the_steps(self):
        setup, create, find, change = sh_blocks(IN_STEPS)
        endpoint = re.search(r"API=\S*/bj_api_sync/v1/([\w-]+)", setup)[1]
        config = self.env["bj.api.sync.config"].create({
            "name": "My contacts", "request_type": "in", "model_id": self.partner_model.id,
            "endpoint": endpoint, "run_as_user_id": self.env.ref("base.user_admin").id,
            "http_method_ids": [Command.set((self.method_get | self.method_post
                                             | self.method_put).ids)],
            "line_ids": config_lines(self.env),
        })
        self.assertEqual(config.authorization_type, "bearer_token", "step 3: already a token")
        setup = setup.replace("<the token copied at step 3>", config.bearer_token)
        setup = setup.replace(README_ODOO, self.base_url())

        created = self.curl(setup, create)
        answer = json.loads(re.search(r"^# (\{.*\})$", create, re.MULTILINE)[1])
        answer["data"]["id"] = created["data"]["id"]
        self.assertEqual(created, answer)
        self.assertIn(created["data"], self.curl(setup, find)["data"])
        changed = self.curl(setup, change.replace("$API/43", f"$API/{created['data']['id']}"))
        self.assertEqual(changed["data"], {**created["data"], "email": "ada@analytical.example"})

        logs = self.get_logs(config)
        self.assertEqual(logs.mapped("status_code"), [201, 200, 200])
        self.assertNotIn(config.bearer_token, "".join(logs.mapped("request_headers")))
        self.assertEqual(self.url_open(f"/bj_api_sync/v1/{endpoint}").status_code, 401)


@tagged("post_install", "-at_install")
class TestFirstIntegrationOut(BjOutboundCase):
    def setUp(self):
        super().setUp()
        (self.receiver_source,) = sh_blocks(OUT_STEPS)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.receiver = None
        self.addCleanup(self.stop_receiver)

    def start_receiver(self):
        source = self.receiver_source.replace(README_RECEIVER_PORT, str(self.port))
        self.receiver = subprocess.Popen(["bash", "-c", source], stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True,
                                         start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            self.assertLess(time.monotonic(), deadline, "the receiver listens")
            time.sleep(0.1)

    def stop_receiver(self):
        if self.receiver:
            os.killpg(self.receiver.pid, signal.SIGTERM)
            self.receiver.wait(10)
            self.receiver.stdout.close()
            self.receiver = None

    def printed(self):
        """The next line the receiver printed."""
        ready, _, _ = select.select([self.receiver.stdout], [], [], 10)
        self.assertTrue(ready, "the receiver printed a line")
        return self.receiver.stdout.readline().strip()

    def test_the_steps(self):
        section = doc_section(README, OUT_STEPS)
        self.start_receiver()
        url = re.search(r"\*\*Request URL\*\*\s+`(http://[^`]+)`", section)[1]
        config = self.env["bj.api.sync.config"].create({
            "name": "Contacts to my receiver", "request_type": "out",
            "model_id": self.partner_model.id,
            "request_url": url.replace(README_RECEIVER_PORT, str(self.port)),
            "http_method_ids": [Command.set(self.method_post.ids)],
            "authorization_type": "no_auth", "line_ids": config_lines(self.env),
            "trigger_on_create": True, "trigger_on_write": True,
            "run_as_user_id": self.env.ref("base.user_admin").id,
        })
        notification = config.action_test_connection()
        self.assertEqual(notification["params"]["title"], "Connection successful")
        self.assertEqual(self.printed(), "HEAD /contacts")

        partner = self.env["res.partner"].create({"name": "Grace Hopper",
                                                  "email": "grace@example.com"})
        self.deliver()
        shown = re.search(r"the receiver prints\s+`(POST [^`]+)`", section)[1]
        self.assertEqual(self.printed(), shown.replace('"id": 44', f'"id": {partner.id}'))
        partner.email = "grace@navy.example"
        self.deliver()
        self.assertEqual(self.printed(), "POST /contacts write " + json.dumps(
            {"id": partner.id, "name": "Grace Hopper", "email": "grace@navy.example"}))
        self.assertEqual(self.get_jobs(config).mapped("state"), ["done", "done"])

        # Step 9: the receiver stops; the change waits, then a retry delivers it.
        self.stop_receiver()
        partner.email = "grace@yale.example"
        self.deliver()
        job = self.get_jobs(config)[-1]
        self.assertEqual(job.state, "pending")
        self.assertIn("Connection refused", job.last_error)
        self.start_receiver()
        self.pass_time(job)
        self.deliver()
        self.assertEqual(job.state, "done")
        self.assertIn('"email": "grace@yale.example"', self.printed())

"""Example (Android): log in on the login app, check the next screen, screenshot, submit.

Made for the simulated phone (`device-agent sim`), whose com.example.login app accepts
demo / secret. Input (job variables, all optional): {"user": "demo", "password": "secret"}.
"""

APP = "com.example.login"


async def main(agent):
    task = await agent.utils.job.get_current_task()
    user = task.job_proof.get("user", "demo")
    password = task.job_proof.get("password", "secret")

    await agent.actions.launch_app(APP, clear_existing=True)
    for field, text in (("username", user), ("password", password)):
        (node,) = await agent.actions.wait_for_node({"view_id": field}, timeout_ms=10000)
        await agent.actions.node_action(node, "set_text", text)
    (button,) = await agent.actions.find(text="Login", class_name="Button")
    await agent.actions.node_action(button, "click")

    (welcome,) = await agent.actions.wait_for_node({"text_contains": "Welcome"}, timeout_ms=10000)
    if welcome["text"] != f"Welcome, {user}":
        raise RuntimeError(f"unexpected greeting after login: {welcome['text']!r}")
    agent.log.info("logged in", greeting=welcome["text"])

    shot = await agent.actions.screenshot(360, 640, 80)
    result = await agent.utils.job.submit_task(
        "success",
        {"greeting": welcome["text"], "width": shot.compressedWidth},
        True,
        [{"name": "welcome", "extension": "jpg", "base64Data": shot.screenshot}],
    )
    if not result.success:
        raise RuntimeError(f"submission refused: {result.error}")

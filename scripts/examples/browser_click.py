"""Example: open a page, click its button, check the page changed, screenshot, submit.

Input (job variables): {"url": "...", "x": 200, "y": 140} — the page and where its button is.
"""


async def main(agent):
    task = await agent.utils.job.get_current_task()
    url = task.job_proof["url"]
    x, y = task.job_proof.get("x", 200), task.job_proof.get("y", 140)

    await agent.actions.browse(url)
    status = "document.getElementById('status').textContent"
    before = await agent.actions.evaluate(status)
    await agent.actions.tap(x, y)
    after = await agent.actions.evaluate(status)
    if after == before:
        raise RuntimeError(f"tapping ({x}, {y}) did not change the page: still {after!r}")
    agent.log.info("the page changed", before=before, after=after)

    shot = await agent.actions.screenshot(400, 300, 80)
    result = await agent.utils.job.submit_task(
        "success",
        {"before": before, "after": after, "width": shot.compressedWidth},
        True,
        [{"name": "page", "extension": "jpg", "base64Data": shot.screenshot}],
    )
    if not result.success:
        raise RuntimeError(f"submission refused: {result.error}")

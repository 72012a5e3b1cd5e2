"""A waiting pair: the use_another_task example of seed 000, translated line by line.

Run two tasks of one job: input `{"role": "A"}` prepares data and waits; input `{"role": "B"}`
takes A's data. The seed's camelCase names are kept; `console.log` is `print`, `JSON.parse` is
`json.loads`. Two loops are not in the seed: A stays alive until it was taken (its `waiting` flag
is cleared when another task takes it), and B asks up to `tries` times (input, default 50), a
moment apart: started together, B may ask before A waits.
"""

import json


async def main(agent):
    if agent.arguments.job_variables.get("role") == "A":
        # Task A: Set up data and wait
        await agent.utils.job.submitTask(
            "running", {"preparedData": "value", "step": "waiting"}, False, []
        )
        await agent.utils.setAutomationVariables({"waiting": True})
        while (await agent.utils.getAutomationVariables()).automation_variables.get("waiting"):
            await agent.utils.sleepRandom(50, 150)
        return {"handed": True}

    # Task B: Access Task A's data (asking a few times: B may start before A waits)
    taskA = None
    for _ in range(agent.arguments.job_variables.get("tries", 50)):
        taskA = await agent.utils.job.useAnotherTask()
        if taskA:
            break
        await agent.utils.sleepRandom(100, 200)
    if taskA:
        taskAData = json.loads(taskA.job_proof)
        print("Got data from Task A:", taskAData["preparedData"])
        return {"found": taskA.job_task_id, "preparedData": taskAData["preparedData"]}
    print("No waiting task available")
    return {"found": None}

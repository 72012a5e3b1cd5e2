"""Everything the simulated phone knows, shared by its services: properties, files, screen, u2."""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.sim.faults import Faults
from drivers.sim.fs import MemoryFS
from drivers.sim.screen import Screen
from drivers.sim.u2rpc import U2Methods
from drivers.sim.u2server import U2Server

SDK = 33
AIRPLANE_SETTING = "global/airplane_mode_on"


def default_props(model: str, serialno: str) -> dict[str, str]:
    return {
        "ro.product.model": model,
        "ro.product.name": "sim",
        "ro.product.device": "sim",
        "ro.product.brand": "DeviceAgent",
        "ro.product.manufacturer": "DeviceAgent",
        "ro.product.cpu.abi": "x86_64",
        "ro.build.version.sdk": str(SDK),
        "ro.build.version.release": "13",
        "ro.build.type": "user",
        "ro.serialno": serialno,
        "ro.boot.serialno": serialno,
        "sys.boot_completed": "1",
    }


@dataclass
class PhoneState:
    props: dict[str, str]
    screen: Screen
    faults: Faults = field(default_factory=Faults)
    fs: MemoryFS = field(default_factory=MemoryFS)
    settings: dict[str, str] = field(default_factory=dict)
    u2: U2Server = field(init=False)

    def __post_init__(self) -> None:
        methods = U2Methods(self.screen, self.props["ro.product.name"], SDK)
        self.u2 = U2Server(methods)
        self.settings.setdefault(
            "secure/default_input_method", "com.android.inputmethod.latin/.LatinIME"
        )
        self.settings.setdefault(AIRPLANE_SETTING, "0")

    @property
    def airplane(self) -> bool:
        return self.settings.get(AIRPLANE_SETTING) == "1"

    def set_airplane(self, on: bool) -> None:
        """Airplane mode: the setting, and the network the phone's apps see."""
        self.settings[AIRPLANE_SETTING] = "1" if on else "0"
        self.screen.set_online(not on)

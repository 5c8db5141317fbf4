"""package.xml, setup.py and the installed layout are what a ROS 2 install expects."""
import ast
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # full synthetic generations or command-line subprocesses

REPO = Path(__file__).resolve().parent.parent
RUNTIME = REPO / "actiseg_ros"

# Python import name -> rosdep key that provides it on a ROS 2 install.
ROSDEP_KEYS = {
    "rclpy": "rclpy", "sensor_msgs": "sensor_msgs", "std_msgs": "std_msgs",
    "diagnostic_msgs": "diagnostic_msgs", "lifecycle_msgs": "lifecycle_msgs", "rcl_interfaces": "rcl_interfaces",
    "cv_bridge": "cv_bridge",
    "launch": "launch", "launch_ros": "launch_ros", "ament_index_python": "ament_index_python",
    "numpy": "python3-numpy", "cv2": "python3-opencv", "yaml": "python3-yaml", "PIL": "python3-pil",
    "tqdm": "python3-tqdm",
}
# No rosdep key exists for these: they must be listed in requirements-runtime.txt (installed with pip).
PIP_ONLY = {"onnxruntime": "onnxruntime", "tokenizers": "tokenizers", "rosbags": "rosbags",
            "pycocotools": "pycocotools"}
# Optional: imported only when selected (TensorRT backend, its CUDA memory) or for an extra report
# (onnx: the bench's FLOP count), documented in the README, never exec_depends.
OPTIONAL = {"tensorrt", "pycuda", "cuda", "onnx"}


def _exec_depends():
    root = ET.parse(REPO / "package.xml").getroot()
    return root, {e.text.strip() for e in root.findall("exec_depend")}


def _runtime_imports(folders=(RUNTIME,)):
    found = {}
    for path in (p for folder in folders for p in folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(path.relative_to(REPO).as_posix())
    return found


def test_package_xml_is_format_3_ament_python():
    root, depends = _exec_depends()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "actiseg_ros"
    assert root.find("export/build_type").text == "ament_python"
    assert {"rclpy", "launch", "launch_ros"} <= depends
    assert "python3-pytest" in {e.text for e in root.findall("test_depend")}


def test_package_xml_names_every_runtime_import():
    _root, depends = _exec_depends()
    undeclared = {}
    for module, files in _runtime_imports().items():
        if module in sys.stdlib_module_names or module == "actiseg_ros" or module in OPTIONAL:
            continue
        if module in PIP_ONLY:
            requirements = (REPO / "requirements-runtime.txt").read_text()
            assert PIP_ONLY[module] in requirements, "%s must be in requirements-runtime.txt" % module
            continue
        assert module in ROSDEP_KEYS, "runtime import %r (in %s) has no rosdep key in this test" % (module,
                                                                                                 sorted(files))
        if ROSDEP_KEYS[module] not in depends:
            undeclared[ROSDEP_KEYS[module]] = sorted(files)
    assert not undeclared, "package.xml lacks exec_depend for: %s" % undeclared


def test_package_xml_declares_nothing_unused():
    """Every exec_depend is imported by the installed code (runtime, training subpackage, launch files)."""
    _root, depends = _exec_depends()
    imports = _runtime_imports((RUNTIME, REPO / "training", REPO / "launch"))
    unused = depends - {ROSDEP_KEYS[module] for module in imports if module in ROSDEP_KEYS}
    assert not unused, "package.xml declares exec_depends that nothing imports: %s" % sorted(unused)


def test_runtime_never_imports_torch_or_training():
    offenders = {m: f for m, f in _runtime_imports().items() if m in {"torch", "transformers", "torchvision"}}
    assert not offenders, offenders


@pytest.fixture(scope="module")
def installed_prefix(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("prefix")
    build = tmp_path_factory.mktemp("src")
    # Build from a copy so the test never races a concurrent install from the working tree.
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"],
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            target = build / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    # --target, not --prefix: with --prefix pip first uninstalls the copy installed in the running venv.
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(prefix), str(build)], check=True)
    return prefix


def test_pip_install_puts_share_files_and_ament_marker(installed_prefix):
    share = installed_prefix / "share" / "actiseg_ros"
    assert (installed_prefix / "share/ament_index/resource_index/packages/actiseg_ros").is_file()
    assert (share / "package.xml").is_file()
    assert (share / "config" / "fastdds_shm.xml").is_file()
    for folder in ("launch", "config", "models"):
        tracked = set(subprocess.run(["git", "-C", str(REPO), "ls-files", folder], check=True, capture_output=True,
                                     text=True).stdout.split())
        installed = {p.relative_to(share).as_posix() for p in (share / folder).rglob("*") if p.is_file()}
        wanted = {name for name in tracked if not name.endswith(".pt")}
        assert wanted <= installed, "not installed: %s" % sorted(wanted - installed)
    assert (installed_prefix / "bin" / "actiseg").is_file()


def test_install_has_the_model_without_the_training_checkpoint(installed_prefix):
    """What a colcon build of a clone installs is enough to run: the text encoder comes from git (no copy, no
    generation step) and matches the card; the 15 MB training checkpoint stays in the repository."""
    from actiseg_ros.inference.model_card import load_model_card

    assert (REPO / "models" / "default" / "actiseg_default.pt").is_file(), "the checkpoint stays in the repository"
    installed = installed_prefix / "share" / "actiseg_ros"
    assert not sorted(installed_prefix.rglob("*.pt")), "a .pt file was installed"
    card = load_model_card(installed / "models" / "default")  # every file present, every sha256 as the card says
    assert card.text_encoder.path == installed / "models" / "default" / "text_encoder.onnx"
    assert json.loads((installed / "models" / "default" / "model_card.json").read_text())["graphs"][
        "text_encoder"]["precision"] == "int8"


def test_data_files_list_no_checkpoint():
    """setup.py's data_files (what colcon's ament_python build installs into share/) as setuptools reads them."""
    out = subprocess.run([sys.executable, "-c", "import runpy, setuptools, json\n"
                          "setuptools.setup = lambda **kw: print(json.dumps(kw['data_files']))\n"
                          "runpy.run_path('setup.py', run_name='__main__')"],
                         cwd=REPO, check=True, capture_output=True, text=True)
    files = [name for _dest, names in json.loads(out.stdout) for name in names]
    assert "models/default/text_encoder.onnx" in files and "models/default/model_card.json" in files
    assert not [name for name in files if name.endswith(".pt")]


def test_ament_index_finds_the_installed_share_dir(installed_prefix):
    env = dict(os.environ, AMENT_PREFIX_PATH=str(installed_prefix))
    out = subprocess.run([sys.executable, "-c",
                          "from ament_index_python.packages import get_package_share_directory as g;"
                          "print(g('actiseg_ros'))"], env=env, check=True, capture_output=True, text=True)
    assert Path(out.stdout.strip()) == installed_prefix / "share" / "actiseg_ros"


def test_training_code_installs_as_a_subpackage(installed_prefix):
    site = installed_prefix  # --target puts packages at the top of the target folder
    assert (site / "actiseg_ros" / "training" / "__init__.py").is_file()
    assert not (site / "training").exists(), "a generic top-level 'training' package must not be installed"

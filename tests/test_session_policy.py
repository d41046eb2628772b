"""One session policy for every onnxruntime session: threads, no spinning, no memory arena or pattern."""
from core.ort import SessionPolicy, create_session, session_policy, set_session_policy
from tests.conftest import build_random_classifier


def test_sessions_give_memory_back_unless_the_policy_keeps_an_arena(tmp_path):
    model = build_random_classifier(tmp_path / "random.onnx").read_bytes()
    default = session_policy()
    assert not (default.memory_arena or default.memory_pattern or default.allow_spinning)
    options = create_session(model).get_session_options()
    assert options.enable_cpu_mem_arena is False and options.enable_mem_pattern is False
    try:
        set_session_policy(SessionPolicy(intra_op_threads=1, memory_arena=True))
        options = create_session(model).get_session_options()
        assert options.enable_cpu_mem_arena is True and options.intra_op_num_threads == 1
    finally:
        set_session_policy(default)

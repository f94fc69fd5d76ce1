import Classification
import GPT2Weights
import Instruct
import PipelineRunner

extension InspectorRegistry {
    /// The runner's generic inspectors plus the decoders each domain module provides: its shards,
    /// safetensors checkpoints and the frozen-trunk states.
    static func full() -> InspectorRegistry {
        var registry = InspectorRegistry.standard()
        registry.register(SafetensorsInspector())
        registry.register(TrunkStatesInspector())
        registry.register(InstructionShardInspector())
        registry.register(ClassificationShardInspector())
        return registry
    }
}

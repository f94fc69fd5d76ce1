import Classification
import GPT2Weights
import Instruct
import PipelineRunner
import Quantization

extension InspectorRegistry {
    /// The runner's generic inspectors plus the decoders each domain module provides: its shards,
    /// safetensors checkpoints, the frozen-trunk states and quantized bases.
    static func full() -> InspectorRegistry {
        var registry = InspectorRegistry.standard()
        registry.register(SafetensorsInspector())
        registry.register(TrunkStatesInspector())
        registry.register(InstructionShardInspector())
        registry.register(ClassificationShardInspector())
        registry.register(QuantizedBaseInspector())
        return registry
    }
}

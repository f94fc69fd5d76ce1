import Foundation

/// The quantized Linear weights of a frozen base model, by tensor name (our parameter layout's
/// names, e.g. "h.0.attn.c_attn.weight"), all of one type.
public final class QuantizedTensors: @unchecked Sendable {
    public let type: QuantizationType
    public private(set) var linears: [String: QuantizedLinear]

    public init(type: QuantizationType, linears: [String: QuantizedLinear]) {
        self.type = type
        self.linears = linears
    }

    public subscript(name: String) -> QuantizedLinear? { linears[name] }

    /// Resident bytes of all codes and scales.
    public var byteCount: Int { linears.values.reduce(0) { $0 + $1.byteCount } }
}

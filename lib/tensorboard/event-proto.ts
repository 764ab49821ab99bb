import protobuf from "protobufjs";

/*
 * The slice of TensorFlow's protos that event files need, defined by reflection so there is
 * no codegen step. Field numbers are those of tensorflow/core/util/event.proto,
 * tensorflow/core/framework/summary.proto, tensor.proto and tensor_shape.proto; names are
 * camelCase because only the numbers reach the wire. Unknown fields (graphs, histograms,
 * images…) are skipped on decode.
 */
const schema = {
  nested: {
    tensorflow: {
      nested: {
        Event: {
          oneofs: { what: { oneof: ["fileVersion", "graphDef", "summary", "logMessage", "sessionLog"] } },
          fields: {
            wallTime: { type: "double", id: 1 },
            step: { type: "int64", id: 2 },
            fileVersion: { type: "string", id: 3 },
            graphDef: { type: "bytes", id: 4 },
            summary: { type: "Summary", id: 5 },
            logMessage: { type: "LogMessage", id: 6 },
            sessionLog: { type: "SessionLog", id: 7 },
          },
        },
        LogMessage: {
          fields: { level: { type: "int32", id: 1 }, message: { type: "string", id: 2 } },
        },
        SessionLog: {
          fields: {
            status: { type: "SessionStatus", id: 1 },
            checkpointPath: { type: "string", id: 2 },
            msg: { type: "string", id: 3 },
          },
          nested: {
            SessionStatus: { values: { STATUS_UNSPECIFIED: 0, START: 1, STOP: 2, CHECKPOINT: 3 } },
          },
        },
        Summary: {
          fields: { value: { rule: "repeated", type: "Value", id: 1 } },
          nested: {
            Value: {
              oneofs: { value: { oneof: ["simpleValue", "tensor"] } },
              fields: {
                tag: { type: "string", id: 1 },
                simpleValue: { type: "float", id: 2 },
                nodeName: { type: "string", id: 7 },
                tensor: { type: "TensorProto", id: 8 },
                metadata: { type: "SummaryMetadata", id: 9 },
              },
            },
          },
        },
        SummaryMetadata: {
          fields: {
            pluginData: { type: "PluginData", id: 1 },
            displayName: { type: "string", id: 2 },
            summaryDescription: { type: "string", id: 3 },
            dataClass: { type: "int32", id: 4 },
          },
          nested: {
            PluginData: {
              fields: { pluginName: { type: "string", id: 1 }, content: { type: "bytes", id: 2 } },
            },
          },
        },
        TensorProto: {
          fields: {
            dtype: { type: "int32", id: 1 },
            tensorShape: { type: "TensorShapeProto", id: 2 },
            tensorContent: { type: "bytes", id: 4 },
            floatVal: { rule: "repeated", type: "float", id: 5, options: { packed: true } },
            doubleVal: { rule: "repeated", type: "double", id: 6, options: { packed: true } },
          },
        },
        TensorShapeProto: {
          fields: { dim: { rule: "repeated", type: "Dim", id: 2 } },
          nested: {
            Dim: { fields: { size: { type: "int64", id: 1 }, name: { type: "string", id: 2 } } },
          },
        },
      },
    },
  },
};

const root = protobuf.Root.fromJSON(schema);
const EventType = root.lookupType("tensorflow.Event");

/** The version string every event file starts with; TensorBoard checks the `brain.Event:` prefix. */
export const FILE_VERSION = "brain.Event:2";

export type SessionStatus = "STATUS_UNSPECIFIED" | "START" | "STOP" | "CHECKPOINT";

/** TensorFlow DataType codes used by scalar tensors. */
const DT_FLOAT = 1;
const DT_DOUBLE = 2;

export interface TensorValue {
  dtype?: number;
  tensorContent?: Uint8Array;
  floatVal?: number[];
  doubleVal?: number[];
}

export interface SummaryValue {
  tag: string;
  simpleValue?: number;
  tensor?: TensorValue;
  metadata?: { pluginData?: { pluginName?: string }; displayName?: string };
}

export interface SessionLogEntry {
  status: SessionStatus;
  checkpointPath?: string;
  msg?: string;
}

/** A decoded Event. `wallTime` is in seconds since the epoch. */
export interface TbEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  summary?: { value: SummaryValue[] };
  sessionLog?: SessionLogEntry;
}

/** What the writer puts into an Event (a subset of TbEvent; zero `step` is left off the wire like proto3 does). */
export type TbEventInput = Pick<TbEvent, "wallTime" | "step"> &
  ({ fileVersion: string } | { summary: { value: SummaryValue[] } } | { sessionLog: SessionLogEntry });

export function encodeEvent(event: TbEventInput): Uint8Array {
  const { step, ...rest } = event;
  const message = EventType.fromObject(step === 0 ? rest : { ...rest, step });
  return EventType.encode(message).finish();
}

/** Decode one Event payload; throws protobufjs's error if the bytes are not an Event. */
export function decodeEvent(bytes: Uint8Array): TbEvent {
  const plain = EventType.toObject(EventType.decode(bytes), { longs: Number, enums: String, bytes: Buffer });
  // toObject yields a plain object shaped by the schema above; only defaults need filling in.
  const event = plain as Partial<TbEvent>;
  return { ...event, wallTime: event.wallTime ?? 0, step: event.step ?? 0 } as TbEvent;
}

/** The number a scalar summary value holds, whether written as simple_value or as a scalar tensor. */
export function scalarOf(value: SummaryValue): number | undefined {
  if (value.simpleValue !== undefined) return value.simpleValue;
  const tensor = value.tensor;
  if (!tensor) return undefined;
  if (tensor.floatVal?.length) return tensor.floatVal[0];
  if (tensor.doubleVal?.length) return tensor.doubleVal[0];
  const content = tensor.tensorContent;
  if (!content) return undefined;
  const view = new DataView(content.buffer, content.byteOffset, content.byteLength);
  if (tensor.dtype === DT_FLOAT && content.byteLength >= 4) return view.getFloat32(0, true);
  if (tensor.dtype === DT_DOUBLE && content.byteLength >= 8) return view.getFloat64(0, true);
  return undefined;
}

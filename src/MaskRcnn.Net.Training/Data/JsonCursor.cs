using System.Globalization;
using System.Text.Json;

namespace MaskRcnn.Net.Training;

/// <summary>
/// A JSON value with the file it came from and its JSONPath, so every accessor can report a
/// <see cref="DatasetFormatException"/> that names the file and the field at fault.
/// </summary>
internal readonly struct JsonCursor
{
    public JsonCursor(string file, string path, JsonElement element)
    {
        File = file;
        Path = path;
        Element = element;
    }

    public string File { get; }

    public string Path { get; }

    public JsonElement Element { get; }

    public JsonValueKind Kind => Element.ValueKind;

    public bool IsNull => Element.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined;

    /// <summary>Parses a whole JSON file; syntax errors become a <see cref="DatasetFormatException"/> with line and position.</summary>
    public static JsonDocument ParseFile(string file, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (!System.IO.File.Exists(file))
        {
            throw new FileNotFoundException($"annotation file {file} does not exist", file);
        }

        try
        {
            using var stream = System.IO.File.OpenRead(file);
            return JsonDocument.Parse(stream, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip, MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            var where = e.LineNumber is { } line
                ? $"line {line + 1}, byte {(e.BytePositionInLine ?? 0) + 1}"
                : null;
            throw new DatasetFormatException(file, where, $"invalid JSON: {e.Message}", e);
        }
    }

    public static JsonCursor Root(string file, JsonDocument document) => new(file, "$", document.RootElement);

    public DatasetFormatException Error(string reason, Exception? inner = null) => new(File, Path, reason, inner);

    public static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString(),
    };

    private string ShowValue()
    {
        var text = Element.GetRawText();
        return text.Length > 40 ? text[..40] + "…" : text;
    }

    public DatasetFormatException TypeError(string expected) =>
        Error($"expected {expected}, found {Describe(Kind)} ({ShowValue()})");

    public static string Child(string path, string name)
    {
        var simple = name.Length > 0 && (char.IsLetter(name[0]) || name[0] == '_') && name.All(c => char.IsLetterOrDigit(c) || c == '_');
        return simple ? $"{path}.{name}" : $"{path}['{name.Replace("'", "\\'", StringComparison.Ordinal)}']";
    }

    // ---- objects -----------------------------------------------------------------------------------------------

    public JsonCursor ExpectObject() => Kind == JsonValueKind.Object ? this : throw TypeError("an object");

    public JsonCursor Get(string name)
    {
        ExpectObject();
        return Element.TryGetProperty(name, out var value)
            ? new JsonCursor(File, Child(Path, name), value)
            : throw new DatasetFormatException(File, Child(Path, name), "required field is missing");
    }

    public bool TryGet(string name, out JsonCursor value)
    {
        ExpectObject();
        if (Element.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null)
        {
            value = new JsonCursor(File, Child(Path, name), v);
            return true;
        }

        value = default;
        return false;
    }

    public bool Has(string name) => Kind == JsonValueKind.Object && Element.TryGetProperty(name, out _);

    public IEnumerable<(string Name, JsonCursor Value)> Properties()
    {
        ExpectObject();
        foreach (var p in Element.EnumerateObject())
        {
            yield return (p.Name, new JsonCursor(File, Child(Path, p.Name), p.Value));
        }
    }

    // ---- arrays ------------------------------------------------------------------------------------------------

    public int ArrayLength => Kind == JsonValueKind.Array ? Element.GetArrayLength() : throw TypeError("an array");

    public JsonCursor At(int index) => new(File, $"{Path}[{index}]", Element[index]);

    public IEnumerable<JsonCursor> Items()
    {
        var n = ArrayLength;
        for (var i = 0; i < n; i++)
        {
            yield return At(i);
        }
    }

    // ---- scalars -----------------------------------------------------------------------------------------------

    public string GetString() => Kind == JsonValueKind.String ? Element.GetString()! : throw TypeError("a string");

    public string GetNonEmptyString()
    {
        var s = GetString();
        return s.Length > 0 ? s : throw Error("must not be empty");
    }

    /// <summary>A finite number (JSON has no NaN/Infinity literals; values that overflow a double are rejected).</summary>
    public double GetDouble()
    {
        if (Kind != JsonValueKind.Number)
        {
            throw TypeError("a number");
        }

        return Element.TryGetDouble(out var d) && double.IsFinite(d) ? d : throw Error($"number {ShowValue()} is not a finite double");
    }

    public long GetInt64()
    {
        if (Kind != JsonValueKind.Number)
        {
            throw TypeError("an integer");
        }

        if (Element.TryGetInt64(out var v))
        {
            return v;
        }

        // Accept integral values written as 5.0.
        if (Element.TryGetDouble(out var d) && Math.Floor(d) == d && Math.Abs(d) < 9e15)
        {
            return (long)d;
        }

        throw Error($"expected an integer, found {ShowValue()}");
    }

    public int GetInt32()
    {
        var v = GetInt64();
        return v is >= int.MinValue and <= int.MaxValue ? (int)v : throw Error($"integer {v} is out of range");
    }

    public int GetPositiveInt32()
    {
        var v = GetInt32();
        return v > 0 ? v : throw Error($"must be positive, found {v}");
    }

    /// <summary>A boolean written as true/false or 0/1 (COCO's <c>iscrowd</c> is an integer).</summary>
    public bool GetFlag() => Kind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Number => GetInt64() switch
        {
            0 => false,
            1 => true,
            var v => throw Error($"expected 0 or 1, found {v}"),
        },
        _ => throw TypeError("0, 1, true or false"),
    };

    /// <summary>An array of finite numbers.</summary>
    public double[] GetDoubleArray()
    {
        var n = ArrayLength;
        var result = new double[n];
        for (var i = 0; i < n; i++)
        {
            result[i] = At(i).GetDouble();
        }

        return result;
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{File}: {Path}");
}

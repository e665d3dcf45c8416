namespace MaskRcnn.Net.Core;

/// <summary>Shape, view, joining and indexing operations.</summary>
public sealed partial class Tensor
{
    private unsafe Tensor Dims(delegate*<TensorHandle, long*, int, nint> f, ReadOnlySpan<long> dims)
    {
        fixed (long* p = dims)
        {
            return new Tensor(f(Handle, p, dims.Length));
        }
    }

    /// <summary>Same data with a new shape (one size may be -1); copies only when a view is impossible.</summary>
    public unsafe Tensor Reshape(params long[] shape) => Dims(&NativeMethods.mr_reshape, shape);

    /// <summary>A view with a new shape (fails if the layout does not allow one).</summary>
    public unsafe Tensor View(params long[] shape) => Dims(&NativeMethods.mr_view, shape);

    /// <summary>Reorders dimensions.</summary>
    public unsafe Tensor Permute(params long[] dims) => Dims(&NativeMethods.mr_permute, dims);

    /// <summary>Broadcasts to a larger shape without copying (-1 keeps a size).</summary>
    public unsafe Tensor Expand(params long[] shape) => Dims(&NativeMethods.mr_expand, shape);

    /// <summary>Tiles the tensor the given number of times along each dimension.</summary>
    public unsafe Tensor Repeat(params long[] repeats) => Dims(&NativeMethods.mr_repeat, repeats);

    /// <summary>Reverses the order along the given dimensions.</summary>
    public unsafe Tensor Flip(params long[] dims) => Dims(&NativeMethods.mr_flip, dims);

    /// <summary>Swaps two dimensions.</summary>
    public Tensor Transpose(long dim0, long dim1) => new(NativeMethods.mr_transpose(Handle, dim0, dim1));

    /// <summary>Transpose of a 2-D tensor.</summary>
    public Tensor T() => Transpose(0, 1);

    /// <summary>Removes every dimension of size 1.</summary>
    public Tensor Squeeze() => new(NativeMethods.mr_squeeze(Handle, 0, 1));

    /// <summary>Removes dimension <paramref name="dim"/> if its size is 1.</summary>
    public Tensor Squeeze(long dim) => new(NativeMethods.mr_squeeze(Handle, dim, 0));

    /// <summary>Inserts a dimension of size 1.</summary>
    public Tensor Unsqueeze(long dim) => new(NativeMethods.mr_unsqueeze(Handle, dim));

    /// <summary>Merges dimensions start..end into one.</summary>
    public Tensor Flatten(long startDim = 0, long endDim = -1) => new(NativeMethods.mr_flatten(Handle, startDim, endDim));

    /// <summary>Elements start, start+step, … below end along <paramref name="dim"/> (a view; bounds are clamped like Python slices).</summary>
    public Tensor Slice(long dim, long start, long end, long step = 1)
    {
        if (step <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(step), step, "slice step must be positive");
        }

        return new Tensor(NativeMethods.mr_slice(Handle, dim, start, end, step));
    }

    /// <summary><paramref name="length"/> elements from <paramref name="start"/> along <paramref name="dim"/> (a view).</summary>
    public Tensor Narrow(long dim, long start, long length) => Slice(dim, start, start + length);

    /// <summary>The sub-tensor at <paramref name="index"/> along <paramref name="dim"/>, which is removed (a view).</summary>
    public Tensor Select(long dim, long index) => new(NativeMethods.mr_select(Handle, dim, index));

    /// <summary>The sub-tensor at <paramref name="index"/> along the first dimension.</summary>
    public Tensor this[long index] => Select(0, index);

    /// <summary>A view with explicit sizes, strides and storage offset (in elements).</summary>
    public unsafe Tensor AsStrided(ReadOnlySpan<long> size, ReadOnlySpan<long> stride, long storageOffset = 0)
    {
        if (size.Length != stride.Length)
        {
            throw new ArgumentException($"size has {size.Length} dimensions but stride has {stride.Length}", nameof(stride));
        }

        fixed (long* s = size)
        fixed (long* st = stride)
        {
            return new Tensor(NativeMethods.mr_as_strided(Handle, s, st, size.Length, storageOffset));
        }
    }

    // ---- joining and splitting ---------------------------------------------------------------------------------

    private static unsafe Tensor Join(delegate*<nint*, int, long, nint> f, IReadOnlyList<Tensor> tensors, long dim)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var hs = Handles(tensors);
        fixed (nint* p = hs)
        {
            var r = new Tensor(f(p, hs.Length, dim));
            GC.KeepAlive(tensors);
            return r;
        }
    }

    /// <summary>Concatenates along an existing dimension.</summary>
    public static unsafe Tensor Cat(IReadOnlyList<Tensor> tensors, long dim = 0) => Join(&NativeMethods.mr_cat, tensors, dim);

    /// <summary>Stacks along a new dimension.</summary>
    public static unsafe Tensor Stack(IReadOnlyList<Tensor> tensors, long dim = 0) => Join(&NativeMethods.mr_stack, tensors, dim);

    private static unsafe Tensor[] Collect(int n, Func<nint[], int> fill)
    {
        var buf = new nint[Math.Max(n, 1)];
        var count = Native.Check(fill(buf));
        if (count > buf.Length)
        {
            foreach (var h in buf)
            {
                NativeMethods.mr_tensor_free(h);
            }

            buf = new nint[count];
            Native.Check(fill(buf));
        }

        var result = new Tensor[count];
        for (var k = 0; k < count; k++)
        {
            result[k] = new Tensor(buf[k]);
        }

        return result;
    }

    /// <summary>Splits along <paramref name="dim"/> into pieces of the given sizes (views).</summary>
    public unsafe Tensor[] Split(ReadOnlySpan<long> sizes, long dim = 0)
    {
        var s = sizes.ToArray();
        return Collect(s.Length, buf =>
        {
            fixed (long* ps = s)
            fixed (nint* pb = buf)
            {
                return NativeMethods.mr_split(Handle, ps, s.Length, dim, pb, buf.Length);
            }
        });
    }

    /// <summary>Splits into <paramref name="chunks"/> nearly equal pieces (views).</summary>
    public unsafe Tensor[] Chunk(long chunks, long dim = 0) => Collect((int)Math.Min(chunks, 4096), buf =>
    {
        fixed (nint* pb = buf)
        {
            return NativeMethods.mr_chunk(Handle, chunks, dim, pb, buf.Length);
        }
    });

    /// <summary>Removes a dimension, returning the slices along it (views).</summary>
    public unsafe Tensor[] Unbind(long dim = 0)
    {
        var shape = Shape;
        var d = dim < 0 ? dim + shape.Length : dim;
        var n = d >= 0 && d < shape.Length ? (int)shape[d] : 0;
        return Collect(n, buf =>
        {
            fixed (nint* pb = buf)
            {
                return NativeMethods.mr_unbind(Handle, dim, pb, buf.Length);
            }
        });
    }

    /// <summary>Coordinate grids ("ij" indexing) from 1-D tensors.</summary>
    public static unsafe Tensor[] Meshgrid(IReadOnlyList<Tensor> tensors)
    {
        var hs = Handles(tensors);
        var result = Collect(hs.Length, buf =>
        {
            fixed (nint* ph = hs)
            fixed (nint* pb = buf)
            {
                return NativeMethods.mr_meshgrid(ph, hs.Length, pb, buf.Length);
            }
        });
        GC.KeepAlive(tensors);
        return result;
    }

    // ---- indexing ----------------------------------------------------------------------------------------------

    /// <summary>Entries of <paramref name="index"/> (int64) along <paramref name="dim"/>.</summary>
    public Tensor IndexSelect(long dim, Tensor index) => new(NativeMethods.mr_index_select(Handle, dim, index.Handle));

    /// <summary>Gathers values along <paramref name="dim"/> at <paramref name="index"/>.</summary>
    public Tensor Gather(long dim, Tensor index) => new(NativeMethods.mr_gather(Handle, dim, index.Handle));

    /// <summary>A copy with <paramref name="source"/> values written at <paramref name="index"/> along <paramref name="dim"/>.</summary>
    public Tensor Scatter(long dim, Tensor index, Tensor source) =>
        new(NativeMethods.mr_scatter(Handle, dim, index.Handle, source.Handle));

    /// <summary>1-D tensor of the elements where <paramref name="mask"/> is true.</summary>
    public Tensor MaskedSelect(Tensor mask) => new(NativeMethods.mr_masked_select(Handle, mask.Handle));

    /// <summary>A copy with <paramref name="value"/> where <paramref name="mask"/> is true.</summary>
    public Tensor MaskedFill(Tensor mask, double value) =>
        new(NativeMethods.mr_masked_fill(Handle, mask.Handle, value, (long)value, 0));

    /// <summary>Writes <paramref name="value"/> where <paramref name="mask"/> is true.</summary>
    public Tensor MaskedFillInPlace(Tensor mask, double value)
    {
        Native.Check(NativeMethods.mr_masked_fill_(Handle, mask.Handle, value, (long)value, 0));
        return this;
    }

    /// <summary>[N, dim] int64 coordinates of the non-zero elements.</summary>
    public Tensor Nonzero() => new(NativeMethods.mr_nonzero(Handle));

    /// <summary>
    /// Advanced indexing <c>t[i0, i1, …]</c>: each index is an int64 or bool tensor, or null for a full slice.
    /// </summary>
    public unsafe Tensor Index(params Tensor?[] indices)
    {
        var hs = Handles(indices, allowNull: true);
        fixed (nint* p = hs)
        {
            var r = new Tensor(NativeMethods.mr_index(Handle, p, hs.Length));
            GC.KeepAlive(indices);
            return r;
        }
    }

    /// <summary>Writes (or with <paramref name="accumulate"/>, adds) <paramref name="values"/> at the indices, in place.</summary>
    public unsafe Tensor IndexPutInPlace(Tensor?[] indices, Tensor values, bool accumulate = false)
    {
        var hs = Handles(indices, allowNull: true);
        fixed (nint* p = hs)
        {
            Native.Check(NativeMethods.mr_index_put_(Handle, p, hs.Length, values.Handle, accumulate ? 1 : 0));
            GC.KeepAlive(indices);
        }

        return this;
    }

    /// <summary>Sorted values and their original indices along <paramref name="dim"/>.</summary>
    public (Tensor Values, Tensor Indices) Sort(long dim = -1, bool descending = false, bool stable = false)
    {
        Native.Check(NativeMethods.mr_sort(Handle, dim, descending ? 1 : 0, stable ? 1 : 0, out var v, out var i));
        return (new Tensor(v), new Tensor(i));
    }

    /// <summary>Indices that sort the tensor along <paramref name="dim"/>.</summary>
    public Tensor ArgSort(long dim = -1, bool descending = false, bool stable = false)
    {
        var (v, i) = Sort(dim, descending, stable);
        v.Dispose();
        return i;
    }

    /// <summary>The <paramref name="k"/> largest (or smallest) values along <paramref name="dim"/> and their indices.</summary>
    public (Tensor Values, Tensor Indices) TopK(long k, long dim = -1, bool largest = true, bool sorted = true)
    {
        Native.Check(NativeMethods.mr_topk(Handle, k, dim, largest ? 1 : 0, sorted ? 1 : 0, out var v, out var i));
        return (new Tensor(v), new Tensor(i));
    }

    /// <summary>Distinct values (sorted when <paramref name="sorted"/>).</summary>
    public Tensor Unique(bool sorted = true) => new(NativeMethods.mr_unique(Handle, sorted ? 1 : 0));

    /// <summary>Repeats each element <paramref name="repeats"/> times along <paramref name="dim"/>.</summary>
    public Tensor RepeatInterleave(long repeats, long dim) => new(NativeMethods.mr_repeat_interleave(Handle, repeats, dim));
}
